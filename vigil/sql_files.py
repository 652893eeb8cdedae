"""Loading the Flink SQL under sql/: placeholders filled in, statements split.

Placeholders are `${name}`; values are quoted for use inside SQL string literals, so a value can
never end a literal, except values wrapped in `Fragment` (SQL the code itself composed). A statement ends with `;` at the end of a line; `--` comments are kept.
"""

from __future__ import annotations

import re
from pathlib import Path
from string import Template

from vigil.paths import PROJECT_ROOT

SQL_DIR = PROJECT_ROOT / "sql"


class Fragment(str):
    """A piece of SQL built by Vigil's code (not user input): inserted as it is."""


def render(relative_path: str, **values) -> list[str]:
    text = (SQL_DIR / relative_path).read_text()
    quoted = {k: v if isinstance(v, Fragment) else str(v).replace("'", "''") for k, v in values.items()}
    rendered = Template(text).substitute(quoted)
    statements, current = [], []
    for line in rendered.splitlines():
        current.append(line)
        if line.rstrip().endswith(";") and not line.lstrip().startswith("--"):
            statement = "\n".join(current).strip().rstrip(";").strip()
            if _has_code(statement):
                statements.append(statement)
            current = []
    if _has_code("\n".join(current)):
        raise ValueError(f"{relative_path}: the last statement does not end with ';'")
    return statements


_VIEW = re.compile(r"^CREATE TEMPORARY VIEW\s+(\w+)\s+AS\s+(.*)$", re.DOTALL | re.IGNORECASE)


def execute(t_env, statement: str) -> None:
    """Run one rendered statement. A view is registered from its planned query (a Table), not
    as SQL text: Flink 2.2 cannot expand a SQL view whose text calls a process table function
    (`TABLE v PARTITION BY ...` fails with a ClassCastException when another query reads the view)."""
    code = "\n".join(line for line in statement.splitlines() if not line.strip().startswith("--")).strip()
    view = _VIEW.match(code)
    if view:
        t_env.create_temporary_view(view.group(1), t_env.sql_query(view.group(2)))
    else:
        t_env.execute_sql(statement)


def _has_code(text: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in text.splitlines())


def path_of(relative_path: str) -> Path:
    return SQL_DIR / relative_path


def dead_letter_table(table_name: str, topic: str, bootstrap: str, transactional_id_prefix: str,
                      transaction_timeout_ms: int) -> str:
    """The CREATE TABLE of a job's dead-letter sink: one layout for every job (sql/ddl/dead_letter_table.sql)."""
    return render("ddl/dead_letter_table.sql", table_name=Fragment(table_name), dlq_topic=topic, bootstrap=bootstrap,
                  transactional_id_prefix=transactional_id_prefix, transaction_timeout_ms=transaction_timeout_ms)[0]
