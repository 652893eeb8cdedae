"""Benchmark: the analytics API under load. Every documented query through HTTP with --clients
concurrent clients, per query and for the largest and the median tenant: latency p50/p95/p99
and queries/s; then a mixed phase (every query in turn, as many dashboards would ask).

Data: the serving rows of bench/serving_explain.py (its generator: 50 tenants, 10,000
merchants, --events-per-day, 20M by default: minute rows of a day, hour rows of 14 days, day rows
of 180 days, fraud and feature rows), in the database --database (vigil_bench_serving). With
--reuse an existing one is kept (e.g. the one serving_explain.py left); otherwise it is made
afresh (4-11 minutes on 2 cores, with the machine's load). The queries' ranges end at the data's generation time, as
serving_explain.py's do (a dashboard's "last hour", "today", "last 30 days").

The API: started by this benchmark as `vigil api` runs it (uvicorn, the app factory, the
transport guard of vigil/api/transport_guard.py; `--transport plain` for uvicorn's own protocol) with
--workers processes, each with a pool of at most --pool PostgreSQL connections (VIGIL_API_POOL_MAX),
no access log, on 127.0.0.1 and a free port; stopped at the end (by its pid).

The clients: closed loop (each sends its next request when the previous answer has arrived, no
think time: the harshest reading of "32 concurrent clients"), one keep-alive HTTP/1.1
connection each, on one asyncio loop in this process. They are written on asyncio streams,
not with an HTTP client library: on 2 cores the load generator takes CPU from the server and
the database it measures, and a bare request/response loop takes the least. Latency is from
writing the request to reading the last byte of the answer. Every answer must be 200.

    .venv/bin/python bench/analytics_queries.py [--reuse] [--clients 32] [--seconds 6]
        [--workers 2] [--pool 16] [--think-ms 0] [--pure-python] [--only TEXT]
        [--app current|async-check] [--transport guarded|plain] [--markdown FILE]

Freshness, with --freshness: event appended to events.raw -> counted in the running window in
the API, while the pipeline runs at --rate events/s. The benchmark sets the pipeline up on fresh
topics (<prefix>.raw, .clean, .dlq and empty fraud topics) and a fresh serving database:
the ingest job and the analytics job each as `vigil run <job>` (a local MiniCluster process
each, not the shared standalone cluster, which tests kill TaskManagers of), `vigil generate` at
--rate into the raw topic, the API on the fresh database. Once the analytics job writes rows and
--settle seconds have passed, a marker every --marker-every seconds: an approved payment of a
merchant id that exists only in that marker (tenant of generated traffic, event time = now),
appended to the raw topic; the time from the broker's acknowledgement of the append to the
first API answer (GET /v1/revenue?grain=minute&merchant_id=<marker's>, polled every
--poll-ms) that counts its order. Everything started is stopped at the end, by pid.

    .venv/bin/python bench/analytics_queries.py --freshness [--rate 2000] [--markers 60]
        [--skip-queries] [--ingest-arg=--checkpoint-interval-ms=1000] [--analytics-arg=--minute-step-s=1]

Other sessions' test runs start and stop the shared local stack: run this on a stack of its own
(VIGIL_STATE and the VIGIL_*_PORT variables, then `vigil infra up`; docs/benchmarks.md has the
commands).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import orjson  # noqa: E402
import psycopg  # noqa: E402

import serving_explain  # noqa: E402  (bench/serving_explain.py: the data generator and the example queries)
from vigil.paths import PROJECT_ROOT  # noqa: E402
from vigil.serving import credentials, keys, postgres, provision  # noqa: E402


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the documented queries as HTTP requests

ENDPOINTS = {"revenue": "/v1/revenue", "funnel": "/v1/funnel", "approval_rate": "/v1/approval-rate",
             "top_merchants": "/v1/revenue/top-merchants", "rejections": "/v1/quality/rejections",
             "dlq_rate": "/v1/quality/dlq-rate", "top_products": "/v1/products/top",
             "top_categories": "/v1/categories/top", "incidents_by_pattern": "/v1/fraud/incidents/by-pattern",
             "recent_incidents": "/v1/fraud/incidents", "alerts_by_pattern": "/v1/fraud/alerts/by-pattern",
             "recent_alerts": "/v1/fraud/alerts"}


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def http_request(name: str, grain: str | None, metric: str | None, params: dict) -> str:
    """The API path and query string that runs query `name` with these parameters."""
    if name == "entity_features":
        return f"/v1/entities/{params['entity_type']}/{urllib.parse.quote(params['entity_id'])}/features"
    query = {}
    if grain is not None or "grain" in params:
        query["grain"] = grain or params["grain"]
    if "start" in params:
        query["from"], query["to"] = _iso(params["start"]), _iso(params["end"])
    if params.get("merchant_id") not in (None, "*"):
        query["merchant_id"] = params["merchant_id"]
    if metric is not None:
        query["by"] = metric
    if "limit" in params:
        query["limit"] = str(params["limit"])
    return ENDPOINTS[name] + "?" + urllib.parse.urlencode(query)


def label_of(name: str, grain: str | None, params: dict) -> str:
    grain = grain or params.get("grain")
    span = serving_explain._span(params["end"] - params["start"]) if "start" in params else None
    merchant = " (one merchant)" if params.get("merchant_id") not in (None, "*") else ""
    return f"{name}{merchant}" + (f" {grain}" if grain else "") + (f" {span}" if span else "")


@dataclass
class Tenant:
    name: str           # "largest" or "median"
    tenant_id: str
    merchant: str
    entity: tuple[str, str]
    key: str = ""
    requests: list[tuple[str, str]] = field(default_factory=list)     # (label, path)


# ---------------------------------------------------------------- the API process

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_with_async_parameter_check():
    """--app async-check: the API with its app-wide parameter check (`_declared_only`, a plain
    `def`, which FastAPI runs in its thread pool on every request) as a coroutine, to measure
    what that thread hand-off costs. Nothing else differs."""
    from fastapi import Request

    import vigil.api.app as api_app

    check = api_app._declared_only

    async def declared_only(request):
        check(request)

    # The class itself, not the string `from __future__ import annotations` would leave: FastAPI
    # must see a Request parameter (an unannotated one would be read as a query parameter).
    declared_only.__annotations__ = {"request": Request}
    api_app._declared_only = declared_only
    return api_app.create_app()


APPS = {"current": "vigil.api.app:create_app", "async-check": "analytics_queries:app_with_async_parameter_check"}


# uvicorn as `vigil api` runs it: the transport guard (head deadline and size cap, connection
# bound: vigil/api/transport_guard.py) unless --transport plain, for the A/B of what it costs.
GUARDED_LAUNCH = """
import sys, uvicorn
from vigil.api.server import transport_options
app, port, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
uvicorn.run(app, factory=True, host="127.0.0.1", port=port, workers=workers, log_level="warning",
            access_log=False, **transport_options())
"""


def start_api(database: str, workers: int, pool: int, port: int, app: str = "current",
              pure_python: bool = False, transport: str = "guarded") -> subprocess.Popen:
    env = {**os.environ, "VIGIL_API_DATABASE": database, "VIGIL_API_POOL_MAX": str(pool), "VIGIL_API_PORT": str(port),
           "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), str(Path(__file__).resolve().parent)])}
    if transport == "guarded" and not pure_python:
        cmd = [sys.executable, "-c", GUARDED_LAUNCH, APPS[app], str(port), str(workers)]
    else:
        cmd = [sys.executable, "-m", "uvicorn", APPS[app], "--factory", "--host", "127.0.0.1",
               "--port", str(port), "--workers", str(workers), "--log-level", "warning", "--no-access-log",
               "--no-server-header"]
    if pure_python:     # what uvicorn falls back to without uvloop and httptools (the A/B of their effect)
        cmd += ["--loop", "asyncio", "--http", "h11"]
    logfile = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"vigil-bench-api-{port}.log", "w")
    proc = subprocess.Popen(cmd, env=env, cwd=PROJECT_ROOT, stdout=logfile, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the API exited ({proc.returncode}); see {logfile.name}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                if answer.status == 200:
                    return proc
        except OSError:
            pass
        time.sleep(0.3)
    proc.terminate()
    raise RuntimeError("the API did not answer /health within 60 s")


def stop_api(proc: subprocess.Popen) -> None:
    proc.terminate()            # uvicorn's supervisor stops its workers on SIGTERM
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its children, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total, children = 0.0, {pid}
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    changed = True
    while changed:
        changed = False
        for p, (ppid, _) in stats.items():
            if ppid in children and p not in children:
                children.add(p)
                changed = True
    for p in children:
        if p in stats:
            total += stats[p][1] / tick
    return total


# ---------------------------------------------------------------- the clients

class Connection:
    """One keep-alive HTTP/1.1 connection; GET only, Content-Length bodies (uvicorn sends one)."""

    def __init__(self, port: int, key: str):
        self.port, self.key = port, key
        self.reader = self.writer = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def get(self, path: str) -> tuple[int, bytes]:
        if self.writer is None:
            await self.open()
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {self.key}\r\n\r\n"
                          .encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, close = 0, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        body = await self.reader.readexactly(length)
        if close:
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@dataclass
class Phase:
    latencies: dict[str, list[float]]
    errors: dict[str, int]
    seconds: float
    api_cpu_s: float


async def run_phase(port: int, key: str, requests: list[tuple[str, str]], clients: int, seconds: float,
                    warmup: float, api_pid: int, think_ms: float = 0.0) -> Phase:
    """`clients` closed-loop clients for warmup + seconds; each walks `requests` round robin from
    its own offset (so a mixed phase has every query in flight at once). Only answers that start
    and end inside the measured interval count. With think_ms, a client waits 0.5-1.5x that
    long after each answer (people at dashboards, not a saturating loop)."""
    rng = random.Random(clients)
    latencies: dict[str, list[float]] = {label: [] for label, _ in requests}
    errors: dict[str, int] = {label: 0 for label, _ in requests}
    start = time.perf_counter()
    measure_from, measure_to = start + warmup, start + warmup + seconds
    cpu = {}

    async def client(index: int) -> None:
        conn = Connection(port, key)
        i = index
        try:
            while True:
                label, path = requests[i % len(requests)]
                i += 1
                sent = time.perf_counter()
                if sent >= measure_to:
                    return
                status, body = await conn.get(path)
                done = time.perf_counter()
                if sent >= measure_from and done <= measure_to:
                    latencies[label].append((done - sent) * 1000)
                    if status != 200:
                        errors[label] += 1
                if think_ms:
                    await asyncio.sleep(think_ms / 1000 * rng.uniform(0.5, 1.5))
        finally:
            conn.close()

    async def cpu_marks() -> None:
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        cpu["from"] = process_tree_cpu(api_pid)
        await asyncio.sleep(max(0.0, measure_to - time.perf_counter()))
        cpu["to"] = process_tree_cpu(api_pid)

    await asyncio.gather(cpu_marks(), *(client(n) for n in range(clients)))
    return Phase(latencies, errors, seconds, cpu["to"] - cpu["from"])


def check_answers(port: int, tenant: Tenant) -> dict[str, int]:
    """Each request once, before the load: 200, and how many rows it answers (a query that
    answers nothing would measure nothing)."""
    rows = {}
    for label, path in tenant.requests:
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                         headers={"Authorization": f"Bearer {tenant.key}"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            body = orjson.loads(answer.read())
        listed = [v for k, v in body.items() if isinstance(v, list)]
        rows[label] = len(listed[0]) if listed else 1
    return rows


# ---------------------------------------------------------------- data

def prepare_data(args) -> tuple[datetime, float]:
    """The serving rows (bench/serving_explain.py's generator); (generated up to, events per day)."""
    settings = postgres.PgSettings()
    postgres.ensure_running(settings, log=lambda *_: None)
    admin = postgres.dsn(credentials.ADMIN, args.database)
    if args.reuse and provision.create_database(args.database, settings) is False:
        with psycopg.connect(admin) as conn:
            if conn.execute("SELECT to_regclass('public.bench_meta') IS NOT NULL").fetchone()[0]:
                end, per_day = conn.execute("SELECT generated_end, events_per_day FROM public.bench_meta").fetchone()
                log(f"reusing {args.database} (rows up to {end:%Y-%m-%d %H:%M} UTC)")
                return end, per_day
    provision.drop_database(args.database, settings)
    provision.prepare_database(args.database, settings, log=lambda *_: None)
    end = datetime.utcnow().replace(second=0, microsecond=0)
    started = time.monotonic()
    serving_explain.generate(admin, args, end)
    log(f"generated in {time.monotonic() - started:.0f} s")
    return end, args.events_per_day


def tenants(args, end: datetime) -> tuple[list[Tenant], dict]:
    admin = postgres.dsn(credentials.ADMIN, args.database)
    with psycopg.connect(admin) as conn:
        ranked = conn.execute("""SELECT tenant_id, count(*) FROM analytics.sales_hour WHERE merchant_id <> '*'
                                  GROUP BY tenant_id ORDER BY count(*) DESC""").fetchall()
        chosen = []
        for name, (tenant_id, _) in (("largest", ranked[0]), ("median", ranked[len(ranked) // 2])):
            merchant = conn.execute("""SELECT merchant_id FROM analytics.sales_minute WHERE tenant_id = %s
                                        AND merchant_id <> '*' GROUP BY 1 ORDER BY count(*) DESC LIMIT 1""",
                                    [tenant_id]).fetchone()[0]
            entity = tuple(conn.execute("SELECT entity_type, entity_id FROM analytics.entity_features"
                                        " WHERE tenant_id = %s LIMIT 1", [tenant_id]).fetchone())
            chosen.append(Tenant(name, tenant_id, merchant, entity))
        events = conn.execute("SELECT sum(events) FROM analytics.sales_minute WHERE merchant_id <> '*'").fetchone()[0]
        sizes = dict(conn.execute("""SELECT p.relname, sum(c.reltuples)::bigint FROM pg_inherits i
                                      JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
                                     GROUP BY 1""").fetchall())
        for table in ("fraud_alerts", "fraud_incidents", "entity_features"):
            sizes[table] = conn.execute(f"SELECT reltuples::bigint FROM pg_class WHERE oid = 'analytics.{table}'::regclass"
                                        ).fetchone()[0]
    for tenant in chosen:
        tenant.key = keys.create(admin, tenant.tenant_id, "bench analytics_queries")[1]
        for name, grain, metric, params in serving_explain.examples(end, tenant.merchant, tenant.entity):
            tenant.requests.append((label_of(name, grain, params), http_request(name, grain, metric, params)))
    return chosen, {"events": events, "sizes": sizes}


# ---------------------------------------------------------------- report

# ---------------------------------------------------------------- freshness

@dataclass
class Pipeline:
    """Processes this benchmark started (each in its own session, stopped with its descendants)."""
    procs: list[tuple[str, subprocess.Popen]] = field(default_factory=list)

    def start(self, name: str, cmd: list[str], env: dict | None = None, log_dir: Path = Path("/tmp")) -> subprocess.Popen:
        logfile = open(log_dir / f"vigil-bench-{name}.log", "w")
        proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env={**os.environ, **(env or {})}, stdout=logfile,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append((name, proc))
        log(f"started {name} (pid {proc.pid}, log {logfile.name})")
        return proc

    def check(self) -> None:
        for name, proc in self.procs:
            # The generator ends by itself after its --duration; ending early or failing is an error.
            if proc.poll() is not None and (name != "generate" or proc.returncode != 0):
                raise RuntimeError(f"{name} exited ({proc.returncode}); see /tmp/vigil-bench-{name}.log")

    def stop(self) -> None:
        import signal

        from vigil import procs as vprocs

        for name, proc in reversed(self.procs):
            # The tree is listed before signalling: a job's JVM outlives its Python parent (then
            # adopted by init, no longer a descendant) unless it is named here.
            tree = [proc.pid, *vprocs.descendants(proc.pid)] if proc.poll() is None else []
            for pid in tree:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            if tree:
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    pass
                time.sleep(2)
                for pid in tree:
                    if vprocs.is_alive(pid):
                        os.kill(pid, signal.SIGKILL)
                proc.poll()
            log(f"stopped {name}")


def marker_template(registry: str) -> dict:
    """An approved payment_result as the generator writes them (decoded from its own stream)."""
    from vigil import serde
    from vigil.generator.stream import EventStream, StreamSettings
    from vigil.generator.wire import EventWriter

    writer = EventWriter.offline()
    for record in EventStream(StreamSettings(seed=7, start_ms=int(time.time() * 1000), rate=1000), writer).records():
        if record.event_type == "payment_result" and record.expected == "clean":
            event = serde.decode(record.value, writer.catalog)
            if event.get("status") == "approved":
                return event
    raise RuntimeError("no approved payment in the generator's stream")


async def poll_marker(port: int, key: str, merchant: str, since: str, appended: asyncio.Future, poll_ms: int,
                      timeout_s: float) -> float | None:
    """Seconds from the append's acknowledgement to the first API answer counting the marker."""
    conn = Connection(port, key)
    path = f"/v1/revenue?grain=minute&merchant_id={merchant}&from={since}"
    try:
        acked = await appended
        deadline = acked + timeout_s
        while time.time() < deadline:
            status, body = await conn.get(path)
            seen = time.time()
            if status == 200 and orjson.loads(body)["totals"]["orders"] >= 1:
                return seen - acked
            await asyncio.sleep(poll_ms / 1000)
        return None
    finally:
        conn.close()


def freshness(args) -> list[str]:
    from confluent_kafka import Producer

    from vigil import kafka_broker, topics
    from vigil.generator.wire import EventWriter
    from vigil.registry import service as registry_service

    broker, registry = kafka_broker.BrokerSettings(), registry_service.RegistrySettings()
    if not (kafka_broker.is_running(broker) and registry_service.is_running(registry)):
        raise SystemExit("--freshness needs Kafka and the schema registry: run `vigil infra up` first")
    bootstrap = broker.bootstrap
    prefix = f"bench-fresh-{os.urandom(3).hex()}"
    names = topics.create_ingest_topics(bootstrap, prefix)
    fraud = {role: f"{prefix}.{name}" for role, name in (("alerts", topics.ALERTS), ("incidents", topics.INCIDENTS),
                                                         ("features", topics.FEATURES))}
    topics.ensure_topics(bootstrap, [topics.like(fraud[r], n) for r, n in (("alerts", topics.ALERTS), (
        "incidents", topics.INCIDENTS), ("features", topics.FEATURES))], log=lambda *_: None)
    pipeline = Pipeline()
    out: list[str] = []
    vigil = [sys.executable, "-m", "vigil.cli"]
    with provision.scratch_database("vigil_bench_fresh") as database:
        try:
            user, password = postgres.writer_credentials()
            pipeline.start("ingest", vigil + ["run", "ingest", "--raw-topic", names["raw"], "--clean-topic",
                                              names["clean"], "--dlq-topic", names["dlq"], "--group-id", f"{prefix}-ingest",
                                              "--transactional-id-prefix", f"{prefix}-ingest", *args.ingest_arg])
            pipeline.start("analytics", vigil + ["run", "analytics", "--clean-topic", names["clean"], "--dlq-topic",
                                                 names["dlq"], "--alerts-topic", fraud["alerts"], "--incidents-topic",
                                                 fraud["incidents"], "--features-topic", fraud["features"], "--group-id",
                                                 f"{prefix}-analytics", "--jdbc-url", postgres.jdbc_url(database),
                                                 "--jdbc-user", user, *args.analytics_arg],
                           env={"VIGIL_JDBC_PASSWORD": password})
            # Traffic only once both jobs are submitted and deploying: a backlog built during their
            # start-up (a minute or more here) would be measured as freshness until drained.
            started = time.monotonic()
            while not all("submitted: job id" in Path(f"/tmp/vigil-bench-{job}.log").read_text(errors="replace")
                          for job in ("ingest", "analytics")):
                pipeline.check()
                if time.monotonic() - started > 600:
                    raise RuntimeError("the jobs were not submitted within 10 minutes")
                time.sleep(1)
            log(f"both jobs submitted after {time.monotonic() - started:.0f} s; traffic in 15 s")
            time.sleep(15)
            traffic_s = args.settle + args.markers * args.marker_every + 240
            generator = pipeline.start("generate", vigil + ["generate", "--topic", names["raw"], "--rate", str(args.rate),
                                                            "--duration", str(traffic_s), "--bad-fraction", "0.02",
                                                            "--chargebacks-topic", "none",
                                                            "--labels-file", f"/tmp/vigil-bench-{prefix}-labels.jsonl"])
            admin = postgres.dsn(credentials.ADMIN, database)
            started = time.monotonic()
            while True:         # the analytics job writes: the whole pipeline runs
                pipeline.check()
                with psycopg.connect(admin) as conn:
                    if conn.execute("SELECT count(*) FROM analytics.sales_minute").fetchone()[0] > 0:
                        break
                if time.monotonic() - started > 600:
                    raise RuntimeError("no analytics rows after 10 minutes")
                time.sleep(2)
            log(f"analytics rows after {time.monotonic() - started:.0f} s; settling {args.settle:g} s")
            time.sleep(args.settle)
            pipeline.check()
            port = free_port()
            api = start_api(database, 1, 4, port)
            pipeline.procs.append(("api", api))
            template = marker_template(registry.url)
            writer = EventWriter.registered(registry.url, names["raw"], with_v2=False)
            tenant = template["tenant_id"]
            key = keys.create(admin, tenant, "bench freshness")[1]
            producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
            load_before = os.getloadavg()
            behind = [pipeline_behind(bootstrap, names, prefix, admin)]
            log(f"before the markers: {behind[0]}")
            timed = asyncio.run(_markers(args, port, key, producer, writer, template, prefix, names["raw"]))
            results = [freshness_s for _, freshness_s in timed]
            load_after = os.getloadavg()
            behind.append(pipeline_behind(bootstrap, names, prefix, admin))
            log(f"after the markers: {behind[1]}")
            sent_rate = _generator_rate(generator)
            with psycopg.connect(admin) as conn:
                late = conn.execute("SELECT coalesce(sum(rejections), 0) FROM analytics.quality_minute"
                                    " WHERE reason = 'analytics_late_event'").fetchone()[0]
                marker_rows = conn.execute("SELECT count(DISTINCT merchant_id) FROM analytics.sales_minute"
                                           " WHERE merchant_id LIKE %s", [f"mk{prefix[-6:]}%"]).fetchone()[0]
        finally:
            pipeline.stop()
        sent_rate = sent_rate or _generator_rate(generator)
    seen = sorted(r for r in results if r is not None)
    missing = len(results) - len(seen)
    flags = lambda extra: " ".join(extra) if extra else "defaults"  # noqa: E731
    out.append(f"Pipeline: `vigil generate --rate {args.rate:g}` -> {names['raw']} -> ingest job (`vigil run ingest`,"
               f" {flags(args.ingest_arg)}) -> {names['clean']} -> analytics job (`vigil run analytics`,"
               f" {flags(args.analytics_arg)}) -> PostgreSQL -> API;"
               f" generator: {sent_rate}; {late:,} events refused by the analytics job as late.")
    out.append(f"Markers: {len(results)}, one every {args.marker_every:g} s after {args.settle:g} s of settling;"
               f" API polled every {args.poll_ms} ms; {missing} not visible within {args.marker_timeout:g} s.\n")
    out.append(f"Markers in the sales_minute table at the end: {marker_rows} of {len(results)}. How far the"
               f" pipeline was behind, before and after the markers: {behind[0]}; {behind[1]}.\n")
    out.append("| freshness (append acknowledged -> counted by the API) | p50 | p90 | p99 | max |")
    out.append("| --- | ---: | ---: | ---: | ---: |")
    if seen:
        out.append(f"| seconds | {percentile(seen, 0.5):.2f} | {percentile(seen, 0.9):.2f} | {percentile(seen, 0.99):.2f}"
                   f" | {seen[-1]:.2f} |")
        # Each marker's second of the minute: a tail that gathers at one second points at work done
        # once a minute (e.g. the hour and day windows' 60 s steps), not at the minute rows' path.
        out.append("\nPer marker (second of the minute it was appended at: seconds until counted): "
                   + ", ".join(f"{ms // 1000 % 60:02d}: {'-' if f is None else f'{f:.1f}'}" for ms, f in timed))
    out.append(f"\nLoad average (1, 5, 15 min) before the markers {', '.join(f'{x:.1f}' for x in load_before)},"
               f" after {', '.join(f'{x:.1f}' for x in load_after)} ({os.cpu_count()} cores).")
    return out


def pipeline_behind(bootstrap: str, names: dict, prefix: str, admin: str) -> str:
    """Records not yet read by each job (its group's committed offsets: committed at checkpoints)
    and how far the newest minute row written is behind the wall clock."""
    from confluent_kafka import Consumer, TopicPartition

    lags = []
    for group, topic in ((f"{prefix}-ingest", names["raw"]), (f"{prefix}-analytics", names["clean"])):
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
        try:
            partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
            lag = 0
            for tp in committed:
                high = consumer.get_watermark_offsets(tp, timeout=10)[1]
                lag += high - (tp.offset if tp.offset >= 0 else 0)
            lags.append(f"{group.rsplit('-', 1)[1]} {lag:,} records behind")
        finally:
            consumer.close()
    with psycopg.connect(admin) as conn:
        newest = conn.execute("SELECT max(window_end) FROM analytics.sales_minute WHERE merchant_id = '*'").fetchone()[0]
    if newest is not None:
        lags.append(f"newest minute row up to {(datetime.utcnow() - newest).total_seconds():.0f} s ago")
    return ", ".join(lags)


async def _markers(args, port, key, producer, writer, template, prefix, raw_topic) -> list[tuple[int, float | None]]:
    """Each marker's append time (ms) and its freshness in seconds (None: not seen in time)."""
    from decimal import Decimal

    from vigil import serde

    loop = asyncio.get_running_loop()
    polls, sent_at = [], []
    for i in range(args.markers):
        now_ms = int(time.time() * 1000)
        sent_at.append(now_ms)
        merchant = f"mk{prefix[-6:]}{i:04d}"
        event = {**template, "event_id": f"e-marker-{prefix[-6:]}-{i}", "merchant_id": merchant, "event_time": now_ms,
                 "status": "approved", "amount": Decimal("10.00"), "currency": "USD"}
        appended = loop.create_future()

        def acked(err, msg, fut=appended):
            if err is None:
                loop.call_soon_threadsafe(fut.set_result, time.time())
            else:
                loop.call_soon_threadsafe(fut.set_exception, RuntimeError(str(err)))

        since = time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime(now_ms / 1000 - 60))
        polls.append(asyncio.ensure_future(poll_marker(port, key, merchant, since, appended, args.poll_ms,
                                                       args.marker_timeout)))
        producer.produce(raw_topic, key=f"{event['tenant_id']}:{event['user_id']}".encode(),
                         value=writer.event(event), timestamp=serde.record_timestamp(now_ms, now_ms), on_delivery=acked)
        producer.flush(10)          # serves the delivery report (acked) at once
        await asyncio.sleep(args.marker_every)
    return list(zip(sent_at, await asyncio.gather(*polls)))


def _generator_rate(proc: subprocess.Popen) -> str:
    """What `vigil generate` said it sent (its last line), or how long it has been running."""
    try:
        text = Path("/tmp/vigil-bench-generate.log").read_text()
    except OSError:
        return "?"
    lines = [line for line in text.splitlines() if "sent" in line]
    return lines[-1].split("generate: ", 1)[-1] if lines else "still running when stopped (its own report not printed)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", default="vigil_bench_serving")
    parser.add_argument("--reuse", action="store_true", help="keep the database's rows if it has them")
    parser.add_argument("--events-per-day", type=float, default=20_000_000)
    parser.add_argument("--minute-days", type=int, default=1)
    parser.add_argument("--hour-days", type=int, default=14)
    parser.add_argument("--day-days", type=int, default=180)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=6.0, help="measured seconds per query and tenant")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each phase")
    parser.add_argument("--mixed-seconds", type=float, default=15.0, help="measured seconds of the mixed phase")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--pool", type=int, default=16, help="PostgreSQL connections per worker at most")
    parser.add_argument("--think-ms", type=float, default=0.0,
                        help="each client waits 0.5-1.5x this after each answer (default 0: saturating)")
    parser.add_argument("--pure-python", action="store_true",
                        help="uvicorn without uvloop and httptools (--loop asyncio --http h11), to compare")
    parser.add_argument("--transport", choices=["guarded", "plain"], default="guarded",
                        help="guarded: uvicorn with the transport guard, as `vigil api` runs (default); "
                             "plain: uvicorn's own httptools protocol (the A/B of the guard's cost)")
    parser.add_argument("--only", help="only queries whose label contains this text")
    parser.add_argument("--app", choices=sorted(APPS), default="current",
                        help="the API as it is, or a variant measured against it (see app_with_async_parameter_check)")
    parser.add_argument("--markdown", help="also write the report to this file")
    parser.add_argument("--skip-queries", action="store_true", help="only the freshness part")
    parser.add_argument("--freshness", action="store_true", help="also measure freshness (starts the pipeline)")
    parser.add_argument("--rate", type=float, default=2000, help="generated events/s during the freshness part")
    parser.add_argument("--markers", type=int, default=60)
    parser.add_argument("--marker-every", type=float, default=2.0, help="seconds between markers")
    parser.add_argument("--marker-timeout", type=float, default=120.0)
    parser.add_argument("--settle", type=float, default=60.0, help="seconds of traffic before the first marker")
    parser.add_argument("--poll-ms", type=int, default=100)
    parser.add_argument("--ingest-arg", action="append", default=[], metavar="FLAG",
                        help="a flag for the ingest job, e.g. --ingest-arg=--checkpoint-interval-ms=1000 (repeatable)")
    parser.add_argument("--analytics-arg", action="append", default=[], metavar="FLAG",
                        help="a flag for the analytics job, e.g. --analytics-arg=--minute-step-s=1 (repeatable)")
    args = parser.parse_args()

    report = [] if args.skip_queries else queries_under_load(args)
    if args.freshness:
        report += ["", "Freshness:", ""] + freshness(args)
    text = "\n".join(report)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    return 0


def queries_under_load(args) -> list[str]:
    end, per_day = prepare_data(args)
    chosen, data = tenants(args, end)
    port = free_port()
    api = start_api(args.database, args.workers, args.pool, port, args.app, args.pure_python, args.transport)
    out: list[str] = []
    try:
        load_before = os.getloadavg()
        rows = {t.name: check_answers(port, t) for t in chosen}
        labels = [label for label, _ in chosen[0].requests if not args.only or args.only in label]
        results: dict[tuple[str, str], Phase] = {}
        for tenant in chosen:
            for label, path in tenant.requests:
                if label not in labels:
                    continue
                phase = asyncio.run(run_phase(port, tenant.key, [(label, path)], args.clients, args.seconds,
                                              args.warmup, api.pid, args.think_ms))
                results[(tenant.name, label)] = phase
                lat = phase.latencies[label]
                log(f"{tenant.name} {label}: {len(lat) / phase.seconds:,.0f} q/s, p50 {percentile(lat, 0.5):.1f}"
                    f" p99 {percentile(lat, 0.99):.1f} ms, errors {phase.errors[label]}")
        mixed = {}
        for tenant in chosen:
            mixed[tenant.name] = asyncio.run(run_phase(port, tenant.key, [r for r in tenant.requests if r[0] in labels],
                                                       args.clients, args.mixed_seconds, args.warmup, api.pid,
                                                       args.think_ms))
            log(f"{tenant.name} mixed: {sum(map(len, mixed[tenant.name].latencies.values())) / args.mixed_seconds:,.0f} q/s")
        load_after = os.getloadavg()
    finally:
        stop_api(api)

    sizes = data["sizes"]
    out.append(f"Data: {args.database}, generated up to {end:%Y-%m-%d %H:%M} UTC at {per_day:,.0f} events a day:"
               f" minute rows represent {data['events']:,} events; rows: "
               + ", ".join(f"{t} {sizes.get(t, 0):,}" for t in ("sales_minute", "sales_hour", "sales_day",
                                                               "quality_minute", "products_hour", "products_day",
                                                               "fraud_alerts", "fraud_incidents", "entity_features")))
    out.append(f"Tenants: largest {chosen[0].tenant_id}, median {chosen[1].tenant_id}.")
    out.append(f"Server: uvicorn {args.workers} worker process(es) ({APPS[args.app]}, transport {args.transport}), a pool of at most"
               f" {args.pool} PostgreSQL connections each, no access log; PostgreSQL 15 as `vigil infra up` runs it."
               f" Clients: {args.clients}, closed loop ({f'{args.think_ms:g} ms' if args.think_ms else 'no'} think time), keep-alive HTTP/1.1, {args.seconds:g} s measured"
               f" per query and tenant after {args.warmup:g} s of warm-up; every answer 200 unless errors are shown.\n")
    out.append("| query | rows (largest) | q/s largest | p50 | p95 | p99 largest | q/s median | p50 | p95 | p99 median |"
               " API CPU ms/query |")
    out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    worst = 0.0
    for label in labels:
        cells = [label, str(rows["largest"][label])]
        cpu = []
        for tenant in ("largest", "median"):
            phase = results[(tenant, label)]
            lat = phase.latencies[label]
            err = f" ({phase.errors[label]} errors)" if phase.errors[label] else ""
            cells += [f"{len(lat) / phase.seconds:,.0f}{err}", f"{percentile(lat, 0.5):.1f}",
                      f"{percentile(lat, 0.95):.1f}", f"**{percentile(lat, 0.99):.1f}**"]
            cpu.append(phase.api_cpu_s * 1000 / max(1, len(lat)))
            worst = max(worst, percentile(lat, 0.99))
        cells.append(f"{cpu[0]:.2f} / {cpu[1]:.2f}")
        out.append("| " + " | ".join(cells) + " |")
    out.append("\nMixed: every query above in turn, each client from its own offset (as many dashboards at once):\n")
    out.append("| tenant | queries/s | p50 | p95 | p99 | slowest query's p99 |")
    out.append("| --- | ---: | ---: | ---: | ---: | --- |")
    for tenant in ("largest", "median"):
        phase = mixed[tenant]
        every = [x for lat in phase.latencies.values() for x in lat]
        slowest = max(phase.latencies, key=lambda k: percentile(phase.latencies[k], 0.99))
        errors = sum(phase.errors.values())
        out.append(f"| {tenant} | {len(every) / phase.seconds:,.0f}{f' ({errors} errors)' if errors else ''} |"
                   f" {percentile(every, 0.5):.1f} | {percentile(every, 0.95):.1f} | {percentile(every, 0.99):.1f} |"
                   f" {slowest}: {percentile(phase.latencies[slowest], 0.99):.1f} |")
    out.append(f"\nWorst p99 of a single query: {worst:.1f} ms (target < 100 ms). Load average (1, 5, 15 min) before"
               f" {', '.join(f'{x:.1f}' for x in load_before)}, after {', '.join(f'{x:.1f}' for x in load_after)}"
               f" ({os.cpu_count()} cores; the clients run on the same cores).")
    return out


if __name__ == "__main__":
    sys.exit(main())
