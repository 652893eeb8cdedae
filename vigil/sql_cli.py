"""`vigil sql`: Flink's own SQL client on the local cluster, with Vigil's catalog loaded.

  vigil sql                          the interactive client: `SELECT * FROM events_clean;` works at once
  vigil sql -f FILE.sql              submit the file's statements as one detached job (its INSERTs
                                     in one statement set), with explicit operator uids
  vigil sql --print-init             the statements that load the catalog (for a notebook or BI tool
                                     talking to the SQL Gateway, which runs them once per session)

The client is bin/sql-client.sh of the apache-flink wheel, in its embedded mode, started with the
local cluster's configuration (vigil.flink_cluster: jobs go to its REST port) and a FLINK_OPT_DIR
beside the wheel's that adds the SQL Gateway jar the wheel leaves out (the embedded client runs a
gateway in its own JVM). The session loads the connector and format jars (ADD JAR) and the catalog
of sql/catalog/ (vigil.sql_catalog) from an init file written with mode 0600 under the state folder:
it holds the serving database's writer password.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from vigil import flink_cluster, jars, sql_catalog
from vigil.paths import sub

SESSION_OPTIONS = {
    "table.local-time-zone": "UTC",          # TIMESTAMP columns mean UTC, as in every Vigil job
    "execution.runtime-mode": "streaming",
    "sql-client.execution.result-mode": "tableau",
}


def sql_home() -> Path:
    return sub(flink_cluster.home(), "sql")


def opt_dir() -> Path:
    """FLINK_OPT_DIR for the SQL client and gateway: the wheel's opt/ jars and the SQL Gateway jar
    (links, refreshed on each call)."""
    opt = sub(flink_cluster.home(), "opt")
    wanted = {p.name: p for p in (flink_cluster.flink_home() / "opt").glob("*.jar")}
    wanted.update({p.name: p for p in jars.ensure("flink-sql-gateway").glob("*.jar")})
    for existing in opt.iterdir():
        if existing.name not in wanted or existing.resolve() != wanted[existing.name]:
            existing.unlink()
    for name, target in wanted.items():
        if not (opt / name).exists():
            (opt / name).symlink_to(target)
    return opt


def environment() -> dict[str, str]:
    """The local cluster's environment for Flink's scripts, plus our FLINK_OPT_DIR."""
    return {**flink_cluster.environment(), "FLINK_OPT_DIR": str(opt_dir())}


def session_jars() -> list[Path]:
    """What a session needs beyond the wheel: Kafka connector, avro-confluent, Vigil's dlq-* formats,
    the JDBC connector and PostgreSQL driver."""
    return jars.flink_connector_jars() + jars.jdbc_jars()


def init_statements(settings: sql_catalog.CatalogSettings | None = None) -> list[str]:
    """The session's options, jars and catalog, as statements without their comments (the SQL
    client splits an init file on semicolons and is best given plain statements). The serving
    tables are left out where the local PostgreSQL is not set up."""
    settings = settings or sql_catalog.CatalogSettings.local()
    statements = [f"SET '{key}' = '{value}'" for key, value in SESSION_OPTIONS.items()]
    statements += [f"ADD JAR '{path}'" for path in session_jars()]
    statements += sql_catalog.statements(settings, serving=bool(settings.jdbc_url))
    return [strip_comments(statement) for statement in statements]


def strip_comments(statement: str) -> str:
    """The statement without its whole-line `--` comments and trailing ones outside literals."""
    lines = []
    for line in statement.splitlines():
        if line.strip().startswith("--"):
            continue
        lines.append(_trailing_comment(line).rstrip())
    return "\n".join(line for line in lines if line.strip())


def _trailing_comment(line: str) -> str:
    """`line` up to a `--` that is outside a quoted literal or identifier."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'`\"":
            quote = char
        elif line.startswith("--", i):
            return line[:i]
    return line


def write_init_file(statements: list[str], name: str = "init.sql") -> Path:
    path = sql_home() / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("-- Written by vigil/sql_cli.py from sql/catalog/: session options, jars, catalog.\n")
        out.write("".join(f"{statement};\n" for statement in statements))
    os.chmod(path, 0o600)
    return path


def client_command(*args: str) -> list[str]:
    init = write_init_file(init_statements())
    return [str(flink_cluster.flink_home() / "bin" / "sql-client.sh"), "embedded", "-i", str(init), *args]


def interactive() -> int:
    _require_cluster()
    return subprocess.call(client_command(), env=environment())


# --- a SQL file as a job --------------------------------------------------------------------------

def job_script(text: str, job_name: str, savepoint: str | None = None) -> str:
    """The SQL client script that submits `text` as one job: pipeline name, operator uids
    `<job_name>.<node id>_<transformation>` on every operator (Flink's table.exec.uid.generation
    ALWAYS: stable while the SQL and the Flink version stay the same, so a savepoint of the job
    restores into a resubmission of the same file), the savepoint to start from, then the file's
    statements, its INSERTs gathered in one EXECUTE STATEMENT SET. INSERTs run detached (the
    client's default): the client returns once the job is submitted.

    >>> print(job_script("CREATE TEMPORARY VIEW v AS SELECT 1 AS x;\\nINSERT INTO t SELECT x FROM v;", "j"))
    SET 'pipeline.name' = 'j';
    SET 'table.exec.uid.generation' = 'ALWAYS';
    SET 'table.exec.uid.format' = 'j.<id>_<transformation>';
    SET 'table.dml-sync' = 'false';
    CREATE TEMPORARY VIEW v AS SELECT 1 AS x;
    EXECUTE STATEMENT SET BEGIN
    INSERT INTO t SELECT x FROM v;
    END;
    """
    options = {"pipeline.name": job_name, "table.exec.uid.generation": "ALWAYS",
               "table.exec.uid.format": f"{job_name}.<id>_<transformation>", "table.dml-sync": "false"}
    if savepoint:
        options["execution.state-recovery.path"] = savepoint
    lines = [f"SET '{key}' = '{value}';" for key, value in options.items()]
    statements = split_statements(text)
    inserts = [s for s in statements if re.match(r"(INSERT|EXECUTE\s+INSERT)\s", s, re.I)]
    lines += [f"{s};" for s in statements if s not in inserts]
    if inserts:
        lines += ["EXECUTE STATEMENT SET BEGIN", *(f"{s};" for s in inserts), "END;"]
    return "\n".join(lines) + "\n"


def split_statements(text: str) -> list[str]:
    """Statements of a SQL file (each ends with `;` at the end of a line), without comments."""
    statements, current = [], []
    for line in text.splitlines():
        current.append(line)
        if line.rstrip().endswith(";") and not line.lstrip().startswith("--"):
            statement = strip_comments("\n".join(current)).rstrip().rstrip(";").strip()
            if statement:
                statements.append(statement)
            current = []
    if strip_comments("\n".join(current)).strip():
        raise ValueError("the last statement does not end with ';'")
    return statements


def submit_file(path: Path, savepoint: str | None = None, job_name: str | None = None) -> str:
    """Submit the SQL file as one detached job on the local cluster; return its job id. The file
    may use the catalog's tables; `${...}` placeholders of sql/ files are not filled in here."""
    _require_cluster()
    job_name = job_name or f"vigil-sql-{path.stem}"
    script = sql_home() / f"job-{path.stem}.sql"
    script.write_text(job_script(path.read_text(), job_name, savepoint))
    result = subprocess.run(client_command("-f", str(script)), env=environment(), capture_output=True, text=True,
                            timeout=600)
    output = result.stdout + result.stderr
    match = re.search(r"Job ID: ([0-9a-f]{32})", output)
    if result.returncode != 0 or not match or "[ERROR]" in output:
        raise RuntimeError(f"the SQL client could not submit {path}:\n{output[-4000:]}")
    return match.group(1)


def _require_cluster() -> None:
    if not flink_cluster.is_running():
        raise SystemExit("vigil sql: the local Flink cluster is not running: `vigil cluster up` first")


# --- the CLI ----------------------------------------------------------------------------------------

def add_parser(sub_parsers) -> None:
    p = sub_parsers.add_parser("sql", help="Flink's SQL client on the local cluster with Vigil's catalog")
    p.add_argument("-f", "--file", type=Path, help="submit this SQL file as one detached job")
    p.add_argument("--savepoint", help="with -f: start the job from this savepoint")
    p.add_argument("--job-name", help="with -f: the job's name (default vigil-sql-<file stem>), prefix of its uids")
    p.add_argument("--print-init", action="store_true", help="print the statements that load the catalog")
    p.set_defaults(func=main)


def main(args) -> int:
    if args.print_init:
        print("".join(f"{statement};\n" for statement in init_statements()))
        return 0
    if args.file:
        if not args.file.is_file():
            print(f"vigil sql: no such file: {args.file}", file=sys.stderr)
            return 2
        job_id = submit_file(args.file, args.savepoint, args.job_name)
        print(f"submitted {args.file}: job id {job_id}; web UI {flink_cluster.ClusterSettings().rest_url}"
              f"/#/job/running/{job_id}/overview")
        return 0
    return interactive()

