"""Serving analytics from PostgreSQL: the local server (postgres.py), its versioned schema
(migrations.py, sql/serving/migrations/), tenants' API keys (keys.py), partition retention
(retention.py) and the `vigil serving` commands (cli.py). The HTTP API on top is vigil/api/.
"""
