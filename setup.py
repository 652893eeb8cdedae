"""Vigil: real-time analytics and fraud detection for multi-tenant e-commerce on Apache Flink."""

from setuptools import find_packages, setup

setup(
    name="vigil",
    version="0.1.0",
    description=__doc__,
    python_requires=">=3.10,<3.12",
    packages=find_packages(include=["vigil", "vigil.*", "jobs", "udfs"]),
    # api/static: the dashboard's page, script, style and the vendored Chart.js (served by the API)
    package_data={"vigil": ["schemas/*.avsc", "schemas/*.json", "schemas/foreign/*.avsc",
                            "api/static/*.html", "api/static/*.js", "api/static/*.css", "api/static/*.svg",
                            "api/static/vendor/*/*.js", "api/static/vendor/*/*.md"]},
    # Direct dependencies, pinned; requirements.lock pins the whole tree (`make setup` uses it).
    install_requires=[
        "apache-flink==2.2.1",
        "avro==1.12.2",              # schema compatibility checks (Apache Avro's own checker)
        "confluent-kafka==2.16.1",
        "fastavro==1.13.1",
        # analytics serving (vigil/serving, vigil/api): PostgreSQL driver and pool, the HTTP API
        "fastapi==0.165.0",
        "psycopg[binary]==3.3.9",
        "psycopg-pool==3.3.3",
        # 0.23.0, not the newest: later rivers need numpy >= 2.2.5, apache-flink 2.2.1 caps numpy
        # below 2.2 (through apache-beam); ADR 0005 has the measured cost of that choice
        "river==0.23.0",
        "uvicorn==0.55.0",
    ],
    extras_require={"test": ["pytest==9.2.0", "pytest-timeout==2.4.0",
                             "hypothesis==6.170.15",     # property-based fuzzing of every input path
                             # drives Debian's headless chromium (the dashboard's browser test);
                             # 4.51.0: 4.52+ requires a certifi newer than any the registry serves here
                             "selenium==4.51.0",
                             # a registry client nobody here wrote, for the registry tests
                             "confluent-kafka[schemaregistry,avro]==2.16.1"]},
    entry_points={"console_scripts": ["vigil=vigil.cli:main"]},
)
