"""Vigil's analytics HTTP API on 127.0.0.1 (FastAPI + uvicorn), over the serving PostgreSQL:
app.py (endpoints), queries.py (the documented SQL), params.py (validation), db.py (tenant-bound
transactions), settings.py, server.py (foreground/background process)."""
