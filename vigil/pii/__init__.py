"""Personal data protection (docs/adr/0016-personal-data-and-erasure.md): subject tokens, per-subject
keys, sealed values. `crypto` is the pure part; the vault and the ingest step build on it."""
