"""Vigil's analytics HTTP API (FastAPI): the documented queries of vigil/api/queries.py per tenant.

Auth: `Authorization: Bearer <key>` or `X-API-Key: <key>` (keys from `vigil serving keys create`).
The key goes to the database, which maps it to its tenant and enforces row-level security
(vigil/api/db.py); this process holds no tenant list and no key. Every parameter is validated
(vigil/api/params.py); unknown or repeated parameters are refused; errors are JSON
`{"error": {"code", "message", "details"}}` with 400, 401, 404, 405 or 503 (never a stack trace).
Times are ISO 8601 (UTC when no offset is given), answered in UTC with a Z; money in USD.
"""

from __future__ import annotations

import json
import logging
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import orjson
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from vigil.api import dashboard, queries
from vigil.api.db import Database, unauthorized
from vigil.api.params import (ENTITY_TYPES, INCIDENT_STATUSES, PRODUCT_METRICS, ApiError, Checker, grain_choice,
                              metric_choice)
from vigil.api.settings import ApiSettings
from vigil.api.single_flight import SingleFlight
from vigil.serving.keys import well_formed

log = logging.getLogger("vigil.api")
GRAIN_HELP = "minute | hour | day"
TIME_HELP = "ISO 8601 (UTC unless an offset is given), e.g. 2026-12-03T10:00:00Z"


def _json_default(value):
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


class JSONResponse(Response):
    """orjson: fast, and naive timestamps (UTC by convention in the database) written with a Z."""
    media_type = "application/json"

    def render(self, content) -> bytes:
        return orjson.dumps(content, default=_json_default, option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z)


def _error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def _now() -> datetime:
    """The default end of a range: now, rounded up to the next whole second. No row starts in the
    future, so the answer is the same, and identical requests of the same second are identical
    (one query for them all: SingleFlight)."""
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    return now.replace(microsecond=0) + timedelta(seconds=1) if now.microsecond else now


def _api_key(request: Request) -> str:
    """The caller's key; 401 when missing or not even shaped like a key (no database trip)."""
    bearer = request.headers.get("authorization")
    header = request.headers.get("x-api-key")
    key = None
    if bearer is not None:
        scheme, _, value = bearer.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise unauthorized("Authorization must be 'Bearer <API key>'")
        key = value.strip()
    if header is not None:
        if key is not None and header.strip() != key:
            raise unauthorized("two different API keys sent (Authorization and X-API-Key)")
        key = header.strip()
    if key is None:
        raise unauthorized("missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
    if not well_formed(key):
        raise unauthorized()
    return key


def _declared_only(request: Request) -> None:
    """Refuse query parameters the route does not declare (a typo like `form=` would otherwise be
    ignored silently and answer for the default range), and repeated ones (which one counts?)."""
    route = request.scope.get("route")
    declared = {p.alias for p in route.dependant.query_params} if route is not None else set()
    checker = Checker()
    for name in request.query_params.keys():
        if name not in declared:
            checker.fail(name, "unknown parameter" + (f"; parameters: {', '.join(sorted(declared))}" if declared else ""))
        elif len(request.query_params.getlist(name)) > 1:
            checker.fail(name, "given more than once")
    checker.done()


def _window_totals(rows: list[dict], fields: tuple[str, ...]) -> dict:
    return {f: sum((r[f] or 0) for r in rows) for f in fields}


def _ratio(numerator, denominator) -> float | None:
    return float(numerator) / float(denominator) if denominator else None


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or ApiSettings()
    db = Database(settings.conninfo(), min_size=settings.pool_min, max_size=settings.pool_max)

    @asynccontextmanager
    async def lifespan(app):
        await db.open()
        yield
        await db.close()

    # The schema at /openapi.json; no /docs or /redoc pages: they load Swagger UI and ReDoc
    # from a CDN, which a local, offline service should not make browsers fetch.
    app = FastAPI(title="Vigil analytics API", version="1", lifespan=lifespan,
                  default_response_class=JSONResponse, dependencies=[Depends(_declared_only)],
                  description=__doc__, docs_url=None, redoc_url=None)
    app.state.db = db
    app.include_router(dashboard.router)     # the dashboard page and its static files

    @app.exception_handler(ApiError)
    async def api_error(request, exc: ApiError):
        return _error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc: RequestValidationError):
        details = [{"parameter": ".".join(str(p) for p in e.get("loc", ())[1:]) or "request",
                    "reason": e.get("msg", "invalid")} for e in exc.errors()]
        return _error_response(ApiError(400, "invalid_parameter", "invalid request", details))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc: StarletteHTTPException):
        codes = {404: "not_found", 405: "method_not_allowed"}
        return _error_response(ApiError(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail),
                                        headers=dict(exc.headers or {})))

    @app.exception_handler(Exception)
    async def unexpected(request, exc: Exception):
        log.exception("unexpected error on %s", request.url.path)
        return _error_response(ApiError(500, "internal_error", "unexpected error; the server log has the details"))

    flights = SingleFlight()
    app.state.flights = flights

    async def run(key: str, name: str, params: dict, grain: str | None = None, metric: str | None = None):
        flight = (key, name, grain, metric, tuple(sorted(params.items())))
        return await flights.run(flight, lambda: db.run(key, queries.render(name, grain, metric), params))

    # Handlers return JSONResponse themselves: a dict would first go through FastAPI's
    # jsonable_encoder (slow, and timestamps without their Z).
    def series_answer(result, grain, start, end, limit, extra: dict | None = None) -> dict:
        answer = {"tenant_id": result.tenant_id, "grain": grain, "from": start, "to": end}
        answer.update(extra or {})
        answer["truncated"] = len(result.rows) >= limit
        answer["series"] = result.rows
        return answer

    # ------------------------------------------------------------------ endpoints

    @app.get("/health", summary="Liveness and database reachability (no key needed)")
    async def health():
        if await db.ping():
            return JSONResponse({"status": "ok", "database": "ok"})
        return JSONResponse({"status": "degraded", "database": "unreachable"}, status_code=503)

    @app.get("/v1/whoami", summary="The tenant of the API key")
    async def whoami(request: Request):
        key = _api_key(request)
        result = await db.run(key, "SELECT serving.current_tenant() AS tenant_id", {})
        return JSONResponse({"tenant_id": result.tenant_id})

    @app.get("/v1/revenue", summary="GMV, orders and average basket per window")
    async def revenue(request: Request,
                      grain: str | None = Query(None, description=GRAIN_HELP + " (default hour)"),
                      from_: str | None = Query(None, alias="from", description=TIME_HELP),
                      to: str | None = Query(None, description=TIME_HELP + " (default now)"),
                      merchant_id: str | None = Query(None, description="a merchant; default: the tenant's totals"),
                      limit: str | None = Query(None, description="at most this many windows (1-10000, default 1000)")):
        key = _api_key(request)
        c = Checker()
        grain = grain_choice(c, grain)
        merchant = c.identifier("merchant_id", merchant_id, allow_tenant_wide=True) or queries.TENANT_WIDE
        n = c.limit(limit, 1000)
        start, end = c.time_range(from_, to, grain, _now())
        c.done()
        result = await run(key, "revenue", {"merchant_id": merchant, "start": start, "end": end, "limit": n}, grain)
        totals = _window_totals(result.rows, ("orders", "gmv_usd"))
        basket = _ratio(totals["gmv_usd"], totals["orders"])
        totals["avg_basket_usd"] = round(basket, 4) if basket is not None else None
        return JSONResponse(series_answer(result, grain, start, end, n, {"merchant_id": merchant, "totals": totals}))

    # Ranking reads one row per merchant and window: by default today's merchants from the day
    # table (one cumulating row each), not 24 hours of hour rows (docs/benchmarks.md).
    @app.get("/v1/revenue/top-merchants", summary="The tenant's merchants ranked by GMV (default: today so far)")
    async def top_merchants(request: Request,
                            grain: str | None = Query(None, description=GRAIN_HELP + " (table read; default day)"),
                            from_: str | None = Query(None, alias="from", description=TIME_HELP + " (default: the start"
                                                      " of the grain's current window: today, this hour)"),
                            to: str | None = Query(None, description=TIME_HELP),
                            limit: str | None = Query(None, description="1-1000, default 10")):
        key = _api_key(request)
        c = Checker()
        grain = grain_choice(c, grain, default="day")
        n = c.limit(limit, 10, 1000)
        start, end = c.time_range(from_, to, grain, _now(), so_far=True)
        c.done()
        result = await run(key, "top_merchants", {"start": start, "end": end, "limit": n}, grain)
        return JSONResponse({"tenant_id": result.tenant_id, "grain": grain, "from": start, "to": end,
                             "merchants": result.rows})

    @app.get("/v1/funnel", summary="Conversion funnel over a range: views -> carts -> checkouts -> payments -> approved")
    async def funnel(request: Request,
                     grain: str | None = Query(None, description=GRAIN_HELP + " (table read; default hour)"),
                     from_: str | None = Query(None, alias="from", description=TIME_HELP),
                     to: str | None = Query(None, description=TIME_HELP),
                     merchant_id: str | None = Query(None, description="a merchant; default: the tenant's totals")):
        key = _api_key(request)
        c = Checker()
        grain = grain_choice(c, grain)
        merchant = c.identifier("merchant_id", merchant_id, allow_tenant_wide=True) or queries.TENANT_WIDE
        start, end = c.time_range(from_, to, grain, _now())
        c.done()
        result = await run(key, "funnel", {"merchant_id": merchant, "start": start, "end": end}, grain)
        row = result.rows[0]
        steps = ("page_views", "add_to_carts", "checkouts", "payment_attempts", "payments_approved")
        conversion = {f"{a}_to_{b}": _ratio(row[b], row[a]) for a, b in zip(steps, steps[1:])}
        conversion["page_views_to_payments_approved"] = _ratio(row["payments_approved"], row["page_views"])
        return JSONResponse({"tenant_id": result.tenant_id, "merchant_id": merchant, "grain": grain, "from": start,
                             "to": end, "windows": row["windows"], "steps": {s: row[s] for s in steps},
                             "conversion": conversion, "updated_at": row["updated_at"]})

    @app.get("/v1/approval-rate", summary="Approved and declined payments and the approval rate per window")
    async def approval_rate(request: Request,
                            grain: str | None = Query(None, description=GRAIN_HELP),
                            from_: str | None = Query(None, alias="from", description=TIME_HELP),
                            to: str | None = Query(None, description=TIME_HELP),
                            merchant_id: str | None = Query(None, description="default: the tenant's totals"),
                            limit: str | None = Query(None, description="1-10000, default 1000")):
        key = _api_key(request)
        c = Checker()
        grain = grain_choice(c, grain)
        merchant = c.identifier("merchant_id", merchant_id, allow_tenant_wide=True) or queries.TENANT_WIDE
        n = c.limit(limit, 1000)
        start, end = c.time_range(from_, to, grain, _now())
        c.done()
        result = await run(key, "approval_rate", {"merchant_id": merchant, "start": start, "end": end, "limit": n},
                           grain)
        totals = _window_totals(result.rows, ("payments_approved", "payments_declined"))
        totals["approval_rate"] = _ratio(totals["payments_approved"],
                                         totals["payments_approved"] + totals["payments_declined"])
        return JSONResponse(series_answer(result, grain, start, end, n, {"merchant_id": merchant, "totals": totals}))

    @app.get("/v1/quality/rejections", summary="Rejected records (events.dlq) per window and reason")
    async def rejections(request: Request,
                         grain: str | None = Query(None, description=GRAIN_HELP),
                         from_: str | None = Query(None, alias="from", description=TIME_HELP),
                         to: str | None = Query(None, description=TIME_HELP),
                         limit: str | None = Query(None, description="1-10000 rows, default 1000")):
        key = _api_key(request)
        c = Checker()
        grain = grain_choice(c, grain)
        n = c.limit(limit, 1000)
        start, end = c.time_range(from_, to, grain, _now())
        c.done()
        result = await run(key, "rejections", {"start": start, "end": end, "limit": n}, grain)
        by_reason: dict[str, int] = {}
        for row in result.rows:
            by_reason[row["reason"]] = by_reason.get(row["reason"], 0) + (row["rejections"] or 0)
        return JSONResponse(series_answer(result, grain, start, end, n, {"by_reason": by_reason}))

    @app.get("/v1/quality/dlq-rate", summary="Share of records rejected to the dead-letter topic, per window")
    async def dlq_rate(request: Request,
                       grain: str | None = Query(None, description=GRAIN_HELP),
                       from_: str | None = Query(None, alias="from", description=TIME_HELP),
                       to: str | None = Query(None, description=TIME_HELP),
                       limit: str | None = Query(None, description="1-10000 windows, default 1000")):
        key = _api_key(request)
        c = Checker()
        grain = grain_choice(c, grain)
        n = c.limit(limit, 1000)
        start, end = c.time_range(from_, to, grain, _now())
        c.done()
        result = await run(key, "dlq_rate", {"start": start, "end": end, "limit": n}, grain)
        for row in result.rows:
            row["dlq_rate"] = _ratio(row["rejections"], row["clean_events"] + row["rejections"])
        totals = _window_totals(result.rows, ("clean_events", "rejections"))
        totals["dlq_rate"] = _ratio(totals["rejections"], totals["clean_events"] + totals["rejections"])
        return JSONResponse(series_answer(result, grain, start, end, n, {"totals": totals}))

    async def top_of(request, name, grain, from_, to, by, limit, key_name):
        key = _api_key(request)
        c = Checker()
        grain = grain_choice(c, grain, queries.PRODUCT_GRAINS, "day")
        metric = metric_choice(c, by)
        n = c.limit(limit, 10, 1000)
        start, end = c.time_range(from_, to, grain, _now())
        c.done()
        result = await run(key, name, {"start": start, "end": end, "limit": n}, grain, metric)
        return JSONResponse({"tenant_id": result.tenant_id, "grain": grain, "from": start, "to": end, "by": metric,
                             key_name: result.rows})

    @app.get("/v1/products/top", summary="Products ranked by views, carts or checkouts")
    async def top_products(request: Request,
                           grain: str | None = Query(None, description="hour | day (default day)"),
                           from_: str | None = Query(None, alias="from", description=TIME_HELP),
                           to: str | None = Query(None, description=TIME_HELP),
                           by: str | None = Query(None, description=" | ".join(PRODUCT_METRICS) + " (default views)"),
                           limit: str | None = Query(None, description="1-1000, default 10")):
        return await top_of(request, "top_products", grain, from_, to, by, limit, "products")

    @app.get("/v1/categories/top", summary="Categories ranked by views, carts or checkouts")
    async def top_categories(request: Request,
                             grain: str | None = Query(None, description="hour | day (default day)"),
                             from_: str | None = Query(None, alias="from", description=TIME_HELP),
                             to: str | None = Query(None, description=TIME_HELP),
                             by: str | None = Query(None, description=" | ".join(PRODUCT_METRICS) + " (default views)"),
                             limit: str | None = Query(None, description="1-1000, default 10")):
        return await top_of(request, "top_categories", grain, from_, to, by, limit, "categories")

    async def by_pattern(request, name, count_name, grain, from_, to, limit):
        key = _api_key(request)
        c = Checker()
        grain = grain_choice(c, grain)
        n = c.limit(limit, 1000)
        start, end = c.time_range(from_, to, grain, _now())
        c.done()
        result = await run(key, name, {"grain": grain, "start": start, "end": end, "limit": n})
        totals: dict[str, int] = {}
        for row in result.rows:
            totals[row["pattern"]] = totals.get(row["pattern"], 0) + row[count_name]
        return JSONResponse(series_answer(result, grain, start, end, n, {"by_pattern": totals}))

    @app.get("/v1/fraud/incidents/by-pattern", summary="Fraud incidents opened per window and pattern")
    async def incidents_by_pattern(request: Request,
                                   grain: str | None = Query(None, description=GRAIN_HELP),
                                   from_: str | None = Query(None, alias="from", description=TIME_HELP),
                                   to: str | None = Query(None, description=TIME_HELP),
                                   limit: str | None = Query(None, description="1-10000 rows, default 1000")):
        return await by_pattern(request, "incidents_by_pattern", "incidents", grain, from_, to, limit)

    @app.get("/v1/fraud/alerts/by-pattern", summary="Fraud alerts per window and pattern")
    async def alerts_by_pattern(request: Request,
                                grain: str | None = Query(None, description=GRAIN_HELP),
                                from_: str | None = Query(None, alias="from", description=TIME_HELP),
                                to: str | None = Query(None, description=TIME_HELP),
                                limit: str | None = Query(None, description="1-10000 rows, default 1000")):
        return await by_pattern(request, "alerts_by_pattern", "alerts", grain, from_, to, limit)

    @app.get("/v1/fraud/incidents", summary="The latest fraud incidents, newest activity first")
    async def recent_incidents(request: Request,
                               status: str | None = Query(None, description=" | ".join(INCIDENT_STATUSES)),
                               from_: str | None = Query(None, alias="from", description=TIME_HELP + " (default: 30 days ago)"),
                               to: str | None = Query(None, description=TIME_HELP),
                               limit: str | None = Query(None, description="1-1000, default 50")):
        key = _api_key(request)
        c = Checker()
        status = c.choice("status", status, INCIDENT_STATUSES, None)
        n = c.limit(limit, 50, 1000)
        start, end = c.time_range(from_, to, "day", _now())
        c.done()
        result = await run(key, "recent_incidents", {"status": status, "start": start, "end": end, "limit": n})
        return JSONResponse({"tenant_id": result.tenant_id, "from": start, "to": end, "incidents": result.rows})

    @app.get("/v1/fraud/alerts", summary="The latest fraud alerts, newest first")
    async def recent_alerts(request: Request,
                            pattern: str | None = Query(None, description="only this pattern, e.g. card_testing"),
                            from_: str | None = Query(None, alias="from", description=TIME_HELP + " (default: 30 days ago)"),
                            to: str | None = Query(None, description=TIME_HELP),
                            limit: str | None = Query(None, description="1-1000, default 50")):
        key = _api_key(request)
        c = Checker()
        pattern = c.pattern("pattern", pattern)
        n = c.limit(limit, 50, 1000)
        start, end = c.time_range(from_, to, "day", _now())
        c.done()
        result = await run(key, "recent_alerts", {"pattern": pattern, "start": start, "end": end, "limit": n})
        for row in result.rows:
            row["reasons"] = _parsed_json(row["reasons"])
        return JSONResponse({"tenant_id": result.tenant_id, "from": start, "to": end, "alerts": result.rows})

    @app.get("/v1/entities/{entity_type}/{entity_id}/features",
             summary="The latest online features of a user, card, device or merchant (features.online)")
    async def entity_features(request: Request, entity_type: str, entity_id: str):
        key = _api_key(request)
        c = Checker()
        entity_type = c.choice("entity_type", entity_type, ENTITY_TYPES, None)
        entity_id = c.identifier("entity_id", entity_id)
        c.done()
        result = await run(key, "entity_features", {"entity_type": entity_type, "entity_id": entity_id})
        if not result.rows:
            raise ApiError(404, "not_found", f"no features for {entity_type} {entity_id!r} of this tenant")
        return JSONResponse({"tenant_id": result.tenant_id, **result.rows[0]})

    return app


def _parsed_json(text):
    """The fraud job writes reasons as JSON text; answer it as JSON (as text if it is not JSON)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text
