"""Schema registry speaking the Confluent Schema Registry REST API (issue 3, in progress).

compatibility.py: the compatibility modes, on Apache Avro's own reader/writer checker.
store.py: subjects, versions, ids and config as a fold over the `_schemas` log (pure logic).
The Kafka-backed log, the REST server and `vigil schema` come next.
"""
