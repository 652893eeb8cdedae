"""The analytics dashboard: one page served by the API, per tenant, refreshed every few seconds.

GET /dashboard                 the page (vigil/api/static/dashboard.html)
GET /dashboard/static/<file>   its script, style and the vendored Chart.js (static/vendor/)

The page holds no data and no key: the browser asks the API's own JSON endpoints (/v1/revenue,
/v1/funnel, /v1/approval-rate, /v1/quality/dlq-rate, /v1/fraud/{alerts,incidents}/by-pattern)
with the tenant's key in the Authorization header, so it shows exactly what the API answers
and row-level security decides the tenant as for any other client. The key is typed into the
page or given in the URL fragment (`/dashboard#key=vgl_...`): a fragment never leaves the
browser, so the key is never in a request line the server or a proxy could log; the page
drops the fragment from the address bar and keeps the key in the tab's sessionStorage.

Every answer here carries a Content-Security-Policy that allows only this origin (no inline
script or style, no CDN, no framing): a script injected through data shown on the page could
not run, nor send the key elsewhere. The files are read once at import, from a fixed list (the
folder's files), so no request path reaches the file system.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response

from vigil.api.params import ApiError

STATIC = Path(__file__).resolve().parent / "static"
CHART_JS_VERSION = "4.6.1"            # static/vendor/chart.js-<version>/VENDORED.md
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".md": "text/plain; charset=utf-8"}

# 'self' only. No 'unsafe-inline' for scripts or styles: Chart.js sizes its canvases through
# the CSSOM (element.style), which CSP allows, and needs no eval. form-action 'none': the key
# form is handled by the script and never submitted (a submitted form could put it in a URL).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
                    "Cross-Origin-Opener-Policy": "same-origin"}


class _File:
    def __init__(self, path: Path):
        self.body = path.read_bytes()
        self.etag = '"' + hashlib.sha256(self.body).hexdigest()[:32] + '"'
        self.media_type = CONTENT_TYPES[path.suffix]


def _files() -> dict[str, _File]:
    return {p.relative_to(STATIC).as_posix(): _File(p) for p in sorted(STATIC.rglob("*"))
            if p.is_file() and p.suffix in CONTENT_TYPES}


FILES = _files()
router = APIRouter(include_in_schema=False)


def _answer(request: Request, name: str, cache: str) -> Response:
    file = FILES.get(name)
    if file is None:
        raise ApiError(404, "not_found", "no such file")
    headers = {**SECURITY_HEADERS, "ETag": file.etag, "Cache-Control": cache}
    if request.headers.get("if-none-match") == file.etag:
        return Response(status_code=304, headers=headers)
    return Response(file.body, media_type=file.media_type, headers=headers)


@router.get("/dashboard")
async def dashboard_page(request: Request) -> Response:
    # no-cache, not no-store: the browser revalidates (a 304 by ETag) and never shows an old page.
    return _answer(request, "dashboard.html", "no-cache")


@router.get("/dashboard/static/{name:path}")
async def dashboard_file(request: Request, name: str) -> Response:
    return _answer(request, name, "no-cache")
