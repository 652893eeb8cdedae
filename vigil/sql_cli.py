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

from vigil import cli_args, flink_cluster, jars, sql_catalog
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
    if not JOB_NAME.fullmatch(job_name):
        raise BadSqlInput(f"job name {job_name[:80]!r}: letters, digits and _ . - (first a letter or digit), "
                          "at most 100 characters (it prefixes every operator uid)")
    if savepoint is not None and (not savepoint or any(c in savepoint for c in "'\\") or not savepoint.isprintable()):
        raise BadSqlInput(f"savepoint {savepoint[:200]!r}: a path or URI without quotes, backslashes or control characters")
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


class BadSqlInput(ValueError):
    """A SQL file, job name or savepoint `vigil sql -f` cannot use; the message is one line."""


MAX_SQL_BYTES = 1024 * 1024      # a job's SQL is a few KiB; a larger file is a mistake or an attack
JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def default_job_name(path: Path) -> str:
    """vigil-sql-<file stem>, with characters a job name cannot hold replaced by '-'.

    >>> default_job_name(Path("/x/top products (v2).sql"))
    'vigil-sql-top-products--v2-'
    """
    return "vigil-sql-" + re.sub(r"[^A-Za-z0-9_.-]", "-", path.stem)[:90]


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
        raise BadSqlInput("the last statement does not end with ';'")
    return statements


def read_sql_file(path: Path) -> str:
    """The text of a SQL file, or BadSqlInput with a one-line reason (cli_args.read_text_file:
    a regular UTF-8 file of at most MAX_SQL_BYTES), holding at least one statement."""
    try:
        text = cli_args.read_text_file(path, MAX_SQL_BYTES, "SQL file")
    except cli_args.BadFile as error:
        raise BadSqlInput(str(error)) from None
    if not strip_comments(text).strip():
        raise BadSqlInput(f"{path} holds no SQL statement")
    return text


def submit_file(path: Path, savepoint: str | None = None, job_name: str | None = None) -> str:
    """Submit the SQL file as one detached job on the local cluster; return its job id. The file
    may use the catalog's tables; `${...}` placeholders of sql/ files are not filled in here.
    BadSqlInput (nothing submitted) for a file, job name or savepoint that cannot be used."""
    job_name = default_job_name(path) if job_name is None else job_name
    text = job_script(read_sql_file(path), job_name, savepoint)   # checked before the cluster is asked
    _require_cluster()
    script = sql_home() / f"job-{job_name}.sql"
    script.write_text(text)
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
        try:
            job_id = submit_file(args.file, args.savepoint, args.job_name)
        except BadSqlInput as error:
            print(f"vigil sql: {error}", file=sys.stderr)
            return 2
        except (RuntimeError, subprocess.TimeoutExpired) as error:   # the SQL client refused it or hung
            print(f"vigil sql: {error}", file=sys.stderr)
            return 1
        print(f"submitted {args.file}: job id {job_id}; web UI {flink_cluster.ClusterSettings().rest_url}"
              f"/#/job/running/{job_id}/overview")
        return 0
    return interactive()

