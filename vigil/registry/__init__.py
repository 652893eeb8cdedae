"""Schema registry speaking the Confluent Schema Registry REST API (ADR 0003).

compatibility.py  the seven compatibility modes, on Apache Avro's own reader/writer checker
store.py          subjects, versions, ids and config as a fold over the `_schemas` log (pure logic)
kafka_log.py      the compacted `_schemas` topic every instance tails
server.py         the HTTP server (`python -m vigil.registry.server`)
service.py        the local process `vigil infra up` starts, and `registry_url()` for everyone
client.py         a small standard-library client of the REST API (any compatible registry)
catalog.py        vigil.serde's SchemaCatalog backed by a registry (producers, jobs, tools)
"""
