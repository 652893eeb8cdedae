"""Schema registry speaking the Confluent Schema Registry REST API (issue 3, in progress).

compatibility.py: the compatibility modes, on Apache Avro's own reader/writer checker.
"""
