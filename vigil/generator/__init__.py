"""`vigil generate`: realistic, reproducible multi-tenant e-commerce traffic with labelled fraud
scenarios and injected bad input. Pure logic (world, sessions, scenarios, bad input, stream)
is separate from Kafka I/O (producer.py)."""
