"""The ASGI application of ``wfm-intervals serve`` (FastAPI: routing, an OpenAPI description and
form parsing from an established stack, run on uvicorn).

Routes:

* ``POST /agentassist/api/public/analytics/account/{accountId}/callvolume`` (Kore.ai, seed 003):
  body ``orgId`` (must be ``[output] org_id``), ``toTimeStamp`` (required), ``fromTimeStamp``,
  ``skip`` (>= 0, default 0), ``limit`` (1..1000, default 100); ``auth: <HS256 JWT>``. Errors
  ``{"errors": [{"msg", "code"}]}`` as the vendor's.
* ``GET /v2/callback/historical/metrics`` (Mindful, seed 000): ``timeBegin``, ``timeEnd``
  (``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM:SSZ``), ``callTargetId`` (id or ``id,id``),
  ``firstPartyCalled``, ``sourceType``, ``type``; ``Authorization: Bearer``. Errors
  ``{"error", "message"}``.
* ``POST /oauth2/token``: client credentials (form body or HTTP Basic) -> a Bearer token.
* ``GET /healthz``; ``GET /openapi.json`` (no ``/docs``: its page loads scripts from a CDN).

Every answer to a refused credential is a bare 401; over ``rate_limit_per_minute`` a client gets
429 with ``Retry-After`` (a client is its credential; refused credentials and the token endpoint
count against the caller's address: the connecting one, or from a ``[serve] trusted_proxies``
proxy the client its ``X-Forwarded-For`` names); a body over ``max_body_bytes`` gets 413. A
parameter given twice (a query or form parameter, a key of the JSON body) is a 400 naming it
(which one was meant is unknown). Skipping past the last row is an empty last page. Any error a
route did not expect is a 500 in the vendor's error shape, never a traceback. The log has one
line per request, whatever its end: method, path (never the query or a header; %-encoded: no
control character), status and milliseconds, and for an unexpected error its type and where it
was raised (never its message: it may quote the input); a client gone mid-body is noted (INFO),
not an error. Store work runs in the thread pool, never on the event loop.

Example:
    ``app = create_app(StoreDocuments(Path("out"), org_id="wfm-intervals"), Guard(settings))``
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
import traceback
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote_plus

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.errors import StoreError
from engine.serve.documents import StoreDocuments
from engine.serve.guard import Guard, behind_proxies
from engine.serve.openapi import KORE_BODY, MAX_LIMIT, METRICS_PARAMETERS
from engine.tables.callback_metrics import parse_time

__all__ = ["BODY_TIMEOUT_S", "KORE_PATH", "METRICS_PATH", "TOKEN_PATH", "create_app"]

#: a request's whole body, from its head (under the stop's wait: engine.serve.server)
BODY_TIMEOUT_S = 5.0
KORE_PATH = "/agentassist/api/public/analytics/account/{account_id}/callvolume"
METRICS_PATH = "/v2/callback/historical/metrics"
TOKEN_PATH = "/oauth2/token"  # noqa: S105 - a URL path
_FILTERS = {
    "firstPartyCalled": ("first_party_called", ("agent", "customer")),
    "sourceType": ("source_type", ("voice", "digital")),
    "type": ("type", ("asap", "scheduled")),
}
#: RFC 3986 ``pchar`` and ``/``: a logged path keeps these, every other character is %-encoded
#: (a decoded ``%0A``, ``%0D`` or space, anything unprintable: it cannot break or forge a line)
_PATH_SAFE = "/-._~!$&'()*+,;=:@"
#: the challenges of a 401 (RFC 6749 5.2: the token endpoint; RFC 6750 3: a Bearer resource)
_BASIC = {"WWW-Authenticate": 'Basic realm="wfm-intervals"'}
_BEARER = {"WWW-Authenticate": 'Bearer realm="wfm-intervals"'}
log = logging.getLogger("wfm_intervals.serve")
_ROOT = Path(__file__).resolve().parents[2]  #: the checkout: where an unexpected error is named


class _BadError(ValueError):
    pass


def _internal_error(path: str) -> JSONResponse:
    """The 500 of an error no route expected, in the shape of the vendor ``path`` belongs to."""
    if path.startswith(KORE_PATH.partition("{")[0]):
        return _kore_error(500, "Internal Server Error")
    return JSONResponse({"error": "Internal Server Error"}, 500)


def _raised_at(exc: BaseException) -> str:
    """``OverflowError at engine/serve/app.py:120``: the type and the innermost frame of the
    project's own code that raised it (never the message: it may quote the request)."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if Path(f.filename).resolve().is_relative_to(_ROOT)]
    if not (ours or frames):
        return type(exc).__name__
    frame = (ours or frames)[-1]
    where = Path(frame.filename).resolve()
    shown = where.relative_to(_ROOT) if where.is_relative_to(_ROOT) else Path(where.name)
    return f"{type(exc).__name__} at {shown.as_posix()}:{frame.lineno}"


class BodyLimit:
    """ASGI middleware: 413 for a body over ``limit`` bytes (declared, or streamed in chunks with
    no ``Content-Length``: the body is read here, at most ``limit`` bytes, before the route
    runs), 408 for one not whole within ``BODY_TIMEOUT_S``, and the request log line: one for
    every request, a route's unexpected error included (answered 500 here when nothing was
    sent, and not raised on: no traceback). A client gone before its whole body arrived is not
    passed to the app: its line says so (INFO)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def _body(self, scope: Scope, receive: Receive) -> list[Message] | JSONResponse:
        """The request's body messages, or the answer refusing it: 413 over the limit, 408 when
        it is not whole within ``BODY_TIMEOUT_S`` (trickled in, or held open: it held up a stop
        too), with the connection closed (the rest of the body is not read)."""
        try:
            async with asyncio.timeout(BODY_TIMEOUT_S):
                messages = await self._chunks(scope, receive)
        except TimeoutError:
            return JSONResponse({"error": "Request Timeout"}, 408, {"Connection": "close"})
        if messages is None:  # the body unread: closed, or a trickled rest held it open
            return JSONResponse({"error": "Payload Too Large"}, 413, {"Connection": "close"})
        return messages

    async def _chunks(self, scope: Scope, receive: Receive) -> list[Message] | None:
        """The request's body messages, or ``None`` when it is over the limit."""
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return None
        messages, seen = [], 0
        while True:
            message = await receive()
            messages.append(message)
            seen += len(message.get("body", b""))
            if seen > self.limit:
                return None
            if message["type"] != "http.request" or not message.get("more_body", False):
                return messages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [0]

        async def noted(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        failed, gone = "", False
        try:
            messages = await self._body(scope, receive)
            if isinstance(messages, JSONResponse):
                await messages(scope, receive, noted)
            elif messages[-1]["type"] == "http.disconnect":
                gone = True
            else:

                async def replay() -> Message:
                    return messages.pop(0) if messages else await receive()

                await self.app(scope, replay, noted)
        except ClientDisconnect:  # the client went away: nothing to answer, nothing failed
            gone = True
        except Exception as exc:  # any: answered and logged below, never a traceback
            failed = _raised_at(exc)
            if not status[0]:
                with contextlib.suppress(Exception):  # the client may be gone
                    await _internal_error(scope["path"])(scope, receive, noted)
        finally:
            ms = (time.perf_counter() - started) * 1000
            path = quote(scope["path"], safe=_PATH_SAFE)
            line = (scope["method"], path, status[0] or (500 if failed else 0), ms)
            if failed:
                log.error("%s %s %s %.1fms: unexpected %s", *line, failed)
            elif gone:
                log.info("%s %s %s %.1fms: the client disconnected", *line)
            else:
                log.info("%s %s %s %.1fms", *line)


def _kore_error(status: int, msg: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"errors": [{"msg": msg, "code": status}]}, status, headers)


def _mindful_error(status: int, error: str, message: str | None = None) -> JSONResponse:
    body = {"error": error} | ({"message": message} if message else {})
    return JSONResponse(body, status)


def _too_many(retry: int, kore: bool) -> JSONResponse:
    headers = {"Retry-After": str(retry)}
    if kore:
        return _kore_error(429, "Too Many Requests", headers)
    return JSONResponse({"error": "Too Many Requests"}, 429, headers)


def _refused(guard: Guard, request: Request, kore: bool) -> JSONResponse:
    """A bare 401 (Mindful's with ``WWW-Authenticate: Bearer``), or 429 once the caller's
    address (the connecting one, or the client a trusted proxy names) has used its budget on
    refused credentials (a guesser is limited like a client)."""
    peer = request.client.host if request.client else "?"
    if (retry := guard.admit(f"peer:{peer}")) is not None:
        return _too_many(retry, kore=kore)
    if kore:
        return _kore_error(401, "Unauthorized")
    return JSONResponse({"error": "unauthorized"}, 401, _BEARER)


def _instant(body: dict[str, Any], name: str) -> datetime | None:
    raw = body.get(name)
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise _BadError(f"{name} must be an ISO 8601 instant")
    try:
        value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise _BadError(f"{name} must be an ISO 8601 instant") from None
    if value.tzinfo is None:
        raise _BadError(f"{name} must carry a UTC offset (…Z)")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the year 1 in UTC
        raise _BadError(f"{name} is out of range: years 1 to 9999 in UTC") from None


def _count(body: dict[str, Any], name: str, default: int, low: int) -> int:
    raw = body.get(name, default)
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < low:
        raise _BadError(f"{name} must be an integer >= {low}")
    return raw


def _credentials(form: dict[str, str], header: str | None) -> list[tuple[str, str]]:
    """The ``(client_id, client_secret)`` readings of a token request, tried in turn: HTTP Basic
    (RFC 6749 2.3.1: form-urlencoded before base64; the raw pair too, as clients that skip that
    send it: the same secret either way) or the form's fields. Basic with a secret (or another
    client id) in the form is a :class:`_BadError`: one method per request (RFC 6749 2.3)."""
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return [(form["client_id"], form.get("client_secret", ""))] if "client_id" in form else []
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except ValueError:  # binascii.Error, UnicodeDecodeError, a non-ASCII str: b64decode's
        return [("", "")]  # a malformed Basic header: a refused credential
    user, _, password = decoded.partition(":")
    if "client_secret" in form or form.get("client_id", user) not in (user, unquote_plus(user)):
        raise _BadError("client credentials in both the Authorization header and the body")
    pairs = [(unquote_plus(user), unquote_plus(password)), (user, password)]
    return pairs[:1] if pairs[0] == pairs[1] else pairs


class _Object(dict[str, Any]):
    """A JSON object, and the first of its keys that it gave more than once ("": none)."""

    repeated = ""


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    found = _Object(pairs)
    found.repeated = next((k for k, n in Counter(k for k, _ in pairs).items() if n > 1), "")
    return found


def _once(pairs: list[tuple[str, str]], hint: dict[str, str]) -> dict[str, str]:
    """``pairs`` as a dict; a name given twice is a :class:`_BadError` naming it (and ``hint``'s
    advice for that name): which value was meant is unknown."""
    found: dict[str, str] = {}
    for name, value in pairs:
        if name in found:
            raise _BadError(f"{name} is given more than once{hint.get(name, '')}")
        found[name] = value
    return found


def _kore_query(raw: bytes, org_id: str) -> tuple[datetime | None, datetime, int, int]:
    """``fromTimeStamp``, ``toTimeStamp``, ``skip``, ``limit`` of a Contact Volume body."""
    try:
        body = json.loads(raw or b"null", object_pairs_hook=_object)
    except RecursionError:  # JSON sets no depth; the parser has one
        raise _BadError("the body is nested too deeply") from None
    if not isinstance(body, dict):
        raise _BadError("the body must be a JSON object")
    if isinstance(body, _Object) and body.repeated:
        raise _BadError(f"{body.repeated} is given more than once")
    if body.get("orgId") != org_id:
        raise _BadError("orgId is missing or unknown")
    until = _instant(body, "toTimeStamp")
    if until is None:
        raise _BadError("toTimeStamp is required")
    since = _instant(body, "fromTimeStamp")
    skip = _count(body, "skip", 0, 0)
    return since, until, skip, min(_count(body, "limit", 100, 1), MAX_LIMIT)


def _metrics_query(
    pairs: list[tuple[str, str]],
) -> tuple[datetime, datetime, dict[str, str | None]]:
    """``timeBegin``, ``timeEnd`` and the filters (as the document's keywords) of a query's
    parameters (seed 000 gives several call targets as one ``id,id`` value, never repeats one)."""
    params = _once(pairs, {"callTargetId": " (several call targets: callTargetId=id,id)"})
    if "timeBegin" not in params or "timeEnd" not in params:
        raise _BadError("timeBegin and timeEnd are required")
    begin, end = parse_time(params["timeBegin"]), parse_time(params["timeEnd"])
    if end <= begin:
        raise _BadError("timeEnd must be after timeBegin")
    filters: dict[str, str | None] = {"call_target_id": params.get("callTargetId") or None}
    for name, (keyword, allowed) in _FILTERS.items():
        value = params.get(name)
        if value is not None and value.lower() not in allowed:
            raise _BadError(f"{name} must be one of {', '.join(allowed)}")
        filters[keyword] = None if value is None else value.lower()
    return begin, end, filters


def create_app(docs: StoreDocuments, guard: Guard) -> ASGIApp:
    """The ASGI app serving ``docs`` behind ``guard`` (see the module docstring)."""
    # no /docs nor /redoc: FastAPI's pages load their scripts from a CDN onto this origin
    app = FastAPI(title="wfm-intervals serve", version="1", docs_url=None, redoc_url=None)
    settings = guard.settings

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        """A route's unexpected error: a 500 in the vendor's shape (:class:`BodyLimit` logs it
        in the request's one line; the error is raised on to it, not to the server)."""
        return _internal_error(request.url.path)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.post(KORE_PATH, openapi_extra=KORE_BODY)
    async def callvolume(account_id: str, request: Request) -> Response:
        """Kore.ai Contact Volume (seed 003): one page of the volume table's rows."""
        client = guard.kore_client(request.headers.get("auth"))
        if client is None:
            return _refused(guard, request, kore=True)
        if settings.kore_account_id not in (None, account_id):
            return _kore_error(404, "Not Found")
        if (retry := guard.admit(client)) is not None:
            return _too_many(retry, kore=True)
        try:
            since, until, skip, limit = _kore_query(await request.body(), docs.org_id)
        except (_BadError, ValueError) as exc:
            msg = str(exc) if isinstance(exc, _BadError) else "the body is not JSON"
            return _kore_error(400, msg)
        try:  # in the thread pool: a page takes the store's lock and Polars work
            page = await run_in_threadpool(
                docs.callvolume, since=since, until=until, skip=skip, limit=limit
            )
        except StoreError as exc:
            log.warning("callvolume: %s", exc)
            return _kore_error(503, "Service Unavailable")
        return JSONResponse(page)

    @app.get(METRICS_PATH, openapi_extra=METRICS_PARAMETERS)
    def metrics(request: Request) -> Response:
        """Mindful callback metrics (seed 000) of ``[timeBegin, timeEnd)``."""
        client = guard.bearer_client(request.headers.get("authorization"))
        if client is None:
            return _refused(guard, request, kore=False)
        if (retry := guard.admit(client)) is not None:
            return _too_many(retry, kore=False)
        try:
            begin, end, filters = _metrics_query(request.query_params.multi_items())
            doc = docs.callback_metrics(begin=begin, end=end, **filters)
        except StoreError as exc:
            log.warning("metrics: %s", exc)
            return _mindful_error(503, "Service Unavailable")
        except ValueError as exc:
            return _mindful_error(400, "Bad Request", str(exc))
        return JSONResponse(doc)

    @app.post(TOKEN_PATH)
    async def token(request: Request) -> Response:
        """OAuth2 client credentials: ``{"access_token", "token_type", "expires_in"}``."""
        peer = request.client.host if request.client else "?"
        if (retry := guard.admit(f"peer:{peer}")) is not None:
            return _too_many(retry, kore=False)
        try:  # a field given twice is invalid_request (RFC 6749 3.2), as a repeated parameter
            form = _once(parse_qsl((await request.body()).decode("latin-1")), {})
            if "grant_type" not in form:
                raise _BadError("grant_type is required")
            pairs = _credentials(form, request.headers.get("authorization"))
        except _BadError as exc:
            return JSONResponse({"error": "invalid_request", "error_description": str(exc)}, 400)
        if form["grant_type"] != "client_credentials":
            return _mindful_error(400, "unsupported_grant_type")
        issued = next(filter(None, (guard.issue(*pair) for pair in pairs)), None)
        if issued is None:  # RFC 6749 5.2: 401 with the challenge of the scheme (Basic) it takes
            return JSONResponse({"error": "invalid_client"}, 401, _BASIC)
        lifetime = settings.token_lifetime_s
        return JSONResponse(
            {"access_token": issued, "token_type": "Bearer", "expires_in": lifetime},
            headers={"Cache-Control": "no-store"},
        )

    return BodyLimit(behind_proxies(app, settings), settings.max_body_bytes)
