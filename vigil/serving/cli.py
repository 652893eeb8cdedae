"""`vigil serving ...` and `vigil api ...`: the analytics database and its HTTP API.

  vigil serving keys create --tenant T [--label L]   a new API key, printed once (only its hash is kept)
  vigil serving keys list [--tenant T]               key ids, tenants, labels, revoked or not
  vigil serving keys revoke KEY_ID                   the key stops working on the next request
  vigil serving retention [--set TABLE=DAYS ...]     create/drop partitions now; change a retention
  vigil serving migrate                              apply pending migrations (infra up does it too)
  vigil serving psql [--role api|writer|admin]       psql on the serving database
  vigil api [--port] [--workers N] [--background|--stop|--status]  the HTTP API on 127.0.0.1

Every command takes --database (default vigil). Exit codes: 0 done, 1 refused (unknown key,
bad value: one line says why), 3 PostgreSQL not reachable (`vigil infra up` starts it).
"""

from __future__ import annotations

import os
import sys

from vigil import cli_args
from vigil.serving import credentials

ROLE_NAMES = {"admin": credentials.ADMIN, "writer": credentials.WRITER, "api": credentials.API}


def _fail(message: str, code: int = 1) -> int:
    print(f"vigil serving: {message}", file=sys.stderr)
    return code


def _admin_dsn(args) -> str:
    from vigil.serving import postgres
    return postgres.dsn(credentials.ADMIN, args.database)


def _guarded(func):
    """Turn the expected failures into one line and an exit code, not a traceback."""
    def wrapper(args) -> int:
        import psycopg
        try:
            return func(args)
        except ValueError as exc:
            return _fail(str(exc))
        except psycopg.OperationalError as exc:
            return _fail(f"PostgreSQL is not reachable ({str(exc).strip().splitlines()[0]}); run `vigil infra up`", 3)
        except RuntimeError as exc:   # no credentials yet: never started
            return _fail(str(exc), 3)
    return wrapper


@_guarded
def cmd_keys(args) -> int:
    from vigil.serving import keys

    if args.keys_action == "create":
        key_id, key = keys.create(_admin_dsn(args), args.tenant, args.label)
        print(f"API key {key_id} for tenant {args.tenant} (shown once, store it now):", file=sys.stderr)
        print(key)
    elif args.keys_action == "list":
        rows = keys.list_keys(_admin_dsn(args), args.tenant)
        print(f"{'key id':<14} {'tenant':<20} {'created (UTC)':<20} {'revoked (UTC)':<20} label")
        for k in rows:
            revoked = f"{k.revoked_at:%Y-%m-%d %H:%M:%S}" if k.revoked_at else "-"
            print(f"{k.key_id:<14} {k.tenant_id:<20} {k.created_at:%Y-%m-%d %H:%M:%S}  {revoked:<20} {k.label or ''}")
    else:
        if not keys.revoke(_admin_dsn(args), args.key_id):
            return _fail(f"no live key with id {args.key_id!r}")
        print(f"revoked {args.key_id}")
    return 0


@_guarded
def cmd_retention(args) -> int:
    from vigil.serving import retention

    dsn = _admin_dsn(args)
    for setting in args.set or []:
        table, _, days = setting.partition("=")
        try:
            value = float(days.rstrip("d"))
        except ValueError:
            return _fail(f"--set {setting!r}: expected TABLE=DAYS, e.g. sales_minute=14")
        retention.set_retention(dsn, table, value)
    for change in retention.maintain(dsn):
        print(f"{change.table}: {change.action} {change.partition if change.partition != change.table else ''}")
    print(f"{'table':<28} {'partitioned by':<15} kept (days)")
    for policy in retention.policies(dsn):
        print(f"{policy.table:<28} {policy.unit or '(' + policy.time_column + ')':<15} {policy.retention_days:g}")
    return 0


@_guarded
def cmd_migrate(args) -> int:
    from vigil.serving import postgres, provision

    provision.prepare_database(args.database, postgres.PgSettings())
    return 0


def cmd_psql(args) -> int:
    from vigil.serving import postgres

    settings = postgres.PgSettings()
    role = ROLE_NAMES[args.role]
    password = credentials.read(postgres.credentials_file())
    if password is None:
        return _fail("PostgreSQL has never been started here; run `vigil infra up`", 3)
    env = {**os.environ, "PGPASSWORD": password[role]}
    psql = str(settings.bin_dir / "psql") if (settings.bin_dir / "psql").exists() else "psql"
    os.execvpe(psql, [psql, "-h", settings.host, "-p", str(settings.port), "-U", role, args.database], env)


def cmd_api(args) -> int:
    from vigil.api import server
    from vigil.api.settings import ApiSettings

    settings = ApiSettings(port=args.port, database=args.database, workers=args.workers)
    if not (args.stop or args.status):
        try:
            settings.conninfo()
        except RuntimeError as exc:      # never started: no credentials to connect with
            return _fail(str(exc), 3)
    if args.stop:
        server.stop_background()
    elif args.status:
        print(server.status(settings))
    elif args.background:
        server.start_background(settings)
    else:
        server.run(settings, access_log=args.access_log)
    return 0


def add_parsers(sub) -> None:
    from vigil.api.settings import ApiSettings
    from vigil.serving.postgres import DATABASE

    p = sub.add_parser("serving", help="analytics database: API keys, retention, migrations, psql")
    p.add_argument("--database", type=cli_args.identifier, default=DATABASE, help="database (default %(default)s)")
    actions = p.add_subparsers(dest="serving_action", required=True)

    k = actions.add_parser("keys", help="tenants' API keys")
    key_actions = k.add_subparsers(dest="keys_action", required=True)
    c = key_actions.add_parser("create", help="a new key for a tenant, printed once")
    c.add_argument("--tenant", required=True)
    c.add_argument("--label", help="what the key is for (shown in listings)")
    lst = key_actions.add_parser("list", help="keys (ids, never the keys)")
    lst.add_argument("--tenant")
    r = key_actions.add_parser("revoke", help="revoke a key by its id")
    r.add_argument("key_id")
    k.set_defaults(func=cmd_keys)

    r = actions.add_parser("retention", help="create upcoming partitions, drop expired ones, show or change retention")
    r.add_argument("--set", action="append", metavar="TABLE=DAYS",
                   help="keep TABLE's rows at least DAYS days, e.g. sales_minute=14 (repeatable)")
    r.set_defaults(func=cmd_retention)

    m = actions.add_parser("migrate", help="apply pending migrations, set role passwords, prepare partitions")
    m.set_defaults(func=cmd_migrate)

    q = actions.add_parser("psql", help="psql on the serving database as a role")
    q.add_argument("--role", choices=sorted(ROLE_NAMES), default="api")
    q.set_defaults(func=cmd_psql)

    defaults = ApiSettings.__dataclass_fields__
    a = sub.add_parser("api", help="the analytics HTTP API on 127.0.0.1")
    a.add_argument("--port", type=cli_args.PORT, default=defaults["port"].default_factory(),
                   help="port (VIGIL_API_PORT, default 8090)")
    a.add_argument("--database", type=cli_args.identifier, default=defaults["database"].default_factory())
    a.add_argument("--workers", type=cli_args.bounded(int, 1, 64), default=defaults["workers"].default_factory(),
                   help="worker processes (VIGIL_API_WORKERS, default 1)")
    a.add_argument("--access-log", action="store_true", help="log every request")
    mode = a.add_mutually_exclusive_group()
    mode.add_argument("--background", action="store_true", help="start it in the background (pid file)")
    mode.add_argument("--stop", action="store_true", help="stop the background API")
    mode.add_argument("--status", action="store_true")
    a.set_defaults(func=cmd_api)
