"""The ingest job writes each clean event to its raw record's partition number
(java/vigil-formats SourcePartitionPartitioner), which reads `source_partition` by position:
the position must be the one clean_events declares."""

from __future__ import annotations

import re

from vigil.paths import PROJECT_ROOT

JAVA = PROJECT_ROOT / "java/vigil-formats/src/main/java/vigil/flink/sinks/SourcePartitionPartitioner.java"


def clean_events_columns() -> list[str]:
    ddl = (PROJECT_ROOT / "sql/ddl/ingest_tables.sql").read_text()
    body = ddl[ddl.index("CREATE TABLE clean_events ("):]
    body = body[:body.index(") WITH (")]
    return [m.group(1) for m in re.finditer(r"^\s+(\w+)\s+[A-Z]", body, re.MULTILINE)]


def test_the_partitioner_reads_the_source_partition_column():
    columns = clean_events_columns()
    field = int(re.search(r"SOURCE_PARTITION_FIELD = (\d+);", JAVA.read_text()).group(1))
    assert columns[field] == "source_partition", columns


def test_the_clean_sink_uses_it():
    ddl = (PROJECT_ROOT / "sql/ddl/ingest_tables.sql").read_text()
    assert "'sink.partitioner' = 'vigil.flink.sinks.SourcePartitionPartitioner'" in ddl
