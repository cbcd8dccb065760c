"""What both web applications share: security headers, request logs without addresses,
deadlines on request bodies and on waiting for a database connection, /healthz, and the
lifespan that gives handlers a database pool.

Each application (survivor-facing ``collect``, staff-facing ``publish``) has its own
``create_app``; ``combine`` mounts several on one port and runs their lifespans together.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import asyncpg
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from feedback.config import IPNetwork, Settings
from feedback.db import Connection, Pool, Role, create_pool
from feedback.errors import ConfigError
from feedback.logs import ACCESS_LOGGER
from feedback.secretfiles import check_shared

access_log = logging.getLogger(ACCESS_LOGGER)
log = logging.getLogger(__name__)

# A client has BODY_DEADLINE_S, and a second more for every BODY_RATE bytes it has sent, to send
# its whole request body: a full survivor post over 2G (a few kilobytes a second) fits, and a
# client that stops sending is cut off once its bytes' allowance is used up; a handler
# waits at most ACQUIRE_TIMEOUT_S for a pooled connection. Past either, the request ends (408 or
# 503): no client can hold a connection or a worker by being slow, and bodies are read before
# a connection is taken.
BODY_DEADLINE_S = 10.0
BODY_RATE = 1000
ACQUIRE_TIMEOUT_S = 3.0
RETRY_AFTER_S = 30


class SlowBody(Exception):
    """The client did not send its request body in time."""


class BodyTooLarge(Exception):
    """The request body is (or says it is) larger than the app takes."""


class Unavailable(Exception):
    """No database connection could be had in time (all busy, or the server unreachable)."""


# What asyncpg raises when the server goes away or refuses work mid-request: answered like
# Unavailable (503, try again), never as a server error.
DATABASE_GONE: tuple[type[BaseException], ...] = (
    Unavailable,
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.OperatorInterventionError,  # admin shutdown, cannot connect now, query cancelled
    asyncpg.exceptions._base.InternalClientError,  # a connection that broke mid-operation
)


def client_address(request: Request) -> str:
    """The client, for rate limits only (never logged or stored): the peer's address, or,
    when the peer is a trusted proxy (FEEDBACK_TRUSTED_PROXIES), the last address in
    X-Forwarded-For (all its lines) that is not one of them. An IPv6 client is its /64, the
    block one subscriber gets; an IPv4 address written as IPv6 (a dual-stack socket) is the
    IPv4 address."""
    peer = _normal(request.client.host if request.client else "")
    trusted: tuple[IPNetwork, ...] = request.state.settings.trusted_proxies
    if not trusted or not _among(peer, trusted):
        return _subscriber(peer)
    forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
    for address in reversed([_normal(a.strip()) for a in forwarded.split(",") if a.strip()]):
        if not _among(address, trusted):
            return _subscriber(address)
    return _subscriber(peer)


class ForwardedScheme:
    """``https`` as the request's scheme when a trusted proxy (FEEDBACK_TRUSTED_PROXIES) says,
    in X-Forwarded-Proto, that the client used it: the proxy ends TLS and the app hears plain
    http, but the URLs it builds (forms, redirects, links) must be the ones the client used.
    Nothing else of the proxy's headers is taken here (addresses: ``client_address``)."""

    def __init__(self, app: ASGIApp, trusted: tuple[IPNetwork, ...]) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("scheme") == "http" and self._says_https(scope):
            scope = {**scope, "scheme": "https"}
        await self.app(scope, receive, send)

    def _says_https(self, scope: Scope) -> bool:
        client = scope.get("client")
        if not client or not _among(_normal(client[0]), self.trusted):
            return False
        said = [v for k, v in scope["headers"] if k == b"x-forwarded-proto"]
        return bool(said) and said[-1].split(b",")[-1].strip().lower() == b"https"


def _normal(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def _subscriber(address: str) -> str:
    """An IPv6 address's /64 (one subscriber can use all of it); anything else as it is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return address


def _among(address: str, networks: tuple[IPNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


_WARNED: list[bool] = []


def warn_if_proxied_untrusted(request: Request) -> None:
    """Say once (in the log) that requests come through a proxy that is not trusted, so that
    every client behind it shares one rate limit. Called from staff requests only: a line at
    a survivor's request would date it."""
    if _WARNED or request.state.settings.trusted_proxies:
        return
    if "x-forwarded-for" in request.headers:
        _WARNED.append(True)
        log.warning(
            "requests carry X-Forwarded-For but FEEDBACK_TRUSTED_PROXIES is empty: every client "
            "behind the proxy shares one rate limit. Set it to the proxy's address."
        )


@contextlib.asynccontextmanager
async def connection(pool: Pool) -> AsyncIterator[Connection]:
    """A pooled connection, waited for at most ACQUIRE_TIMEOUT_S; Unavailable otherwise,
    whatever kept it (every one busy, the server down, starting, refusing this database)."""
    try:
        conn = await pool.acquire(timeout=ACQUIRE_TIMEOUT_S)
    except Exception as exc:  # any failure to connect is the same answer
        raise Unavailable(f"no database connection ({type(exc).__name__})") from None
    try:
        yield conn
    finally:
        await pool.release(conn)


CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)

PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer",
        "autoplay",
        "camera",
        "display-capture",
        "encrypted-media",
        "fullscreen",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "midi",
        "payment",
        "picture-in-picture",
        "publickey-credentials-get",
        "screen-wake-lock",
        "sync-xhr",
        "usb",
        "xr-spatial-tracking",
    )
)


CSP = b"content-security-policy"


def security_headers(*, csp: str, https: bool) -> list[tuple[bytes, bytes]]:
    headers = {
        "content-security-policy": csp,
        "referrer-policy": "no-referrer",
        "x-content-type-options": "nosniff",
        "x-frame-options": "DENY",
        "permissions-policy": PERMISSIONS_POLICY,
        "cross-origin-opener-policy": "same-origin",
        "cross-origin-resource-policy": "same-origin",
        "x-robots-tag": "noindex, nofollow",
    }
    if https:
        headers["strict-transport-security"] = "max-age=63072000; includeSubDomains"
    return [(k.encode(), v.encode()) for k, v in headers.items()]


class Edge:
    """Every HTTP response gets the security headers (and ``no-store`` unless the handler chose
    a cache policy; never a Server header), and requests a log line: method, route template,
    status, duration. No address, no query string, no path parameters (they can hold tokens).
    The survivor app logs only server errors (``log_all=False``): a line per request, stamped
    by whatever collects the log, would date survivors' visits and answers. One wrapper does
    both: this is on every request's path."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        csp: str = CONTENT_SECURITY_POLICY,
        https: bool = False,
        log_all: bool = True,
        max_body: int = 64 * 1024,
    ):
        self.app = app
        self.max_body = max_body
        self.headers = security_headers(csp=csp, https=https)
        self.names = {name for name, _ in self.headers} | {b"server"}
        self.log_all = log_all

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        body_done = False
        declared = _declared_length(scope)
        received = 0
        responding = False

        async def receive_in_time() -> Message:
            """The body's next part, if the whole body is still within its deadline and size."""
            nonlocal body_done, received
            if body_done or responding:  # (a response streaming out listens for disconnects)
                return await receive()
            if declared > self.max_body:
                raise BodyTooLarge
            left = BODY_DEADLINE_S + received / BODY_RATE - (time.perf_counter() - started)
            try:
                async with asyncio.timeout(max(left, 0.0)):
                    message = await receive()
            except TimeoutError:
                raise SlowBody from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLarge
            body_done = message["type"] != "http.request" or not message.get("more_body")
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal status, responding
            if message["type"] == "http.response.start":
                responding = True
                status = message["status"]
                given = message.get("headers", [])
                raw = [(k, v) for k, v in given if k.lower() not in self.names]
                # A handler may set a policy of its own (a funder's publication, which allows
                # its inline stylesheet by hash and is sandboxed); every other header is ours.
                own = [(k, v) for k, v in given if k.lower() == CSP]
                raw.extend(own + [h for h in self.headers if not (own and h[0] == CSP)])
                if not any(k.lower() == b"cache-control" for k, _ in raw):
                    raw.append((b"cache-control", b"no-store"))
                message["headers"] = raw
            await send(message)

        failure: BaseException | None = None
        try:
            await self.app(scope, receive_in_time, send_with_headers)
        except Exception as exc:
            failure = exc
            if self.log_all:
                raise
            # The survivor app: the error page was sent; the error is logged here, with the
            # hour only, not by the server (which would stamp it to the second).
        finally:
            if self.log_all or status >= 500:
                access_log.log(
                    logging.ERROR if failure else logging.INFO,
                    "%s %s %d %.1fms",
                    scope["method"],
                    route_template(scope),
                    status,
                    (time.perf_counter() - started) * 1000,
                    exc_info=failure,
                )


def _declared_length(scope: Scope) -> int:
    """The request's Content-Length (0 if it declares none it can read; the body is counted
    as it arrives either way)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length" and value.isdigit():
            return int(value) if len(value) <= 18 else 10**18
    return 0


class CompressReads:
    """gzip for GET and HEAD responses over 2 KB (the survey page, scripts): slow phones on 2G
    gain most there. Posts answer with small pages that fit the first round trip anyway."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=2048)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            await self.gzip(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def route_template(scope: Scope) -> str:
    """``/s/{token}`` rather than the path that was asked for; ``(unmatched)`` for 404s."""
    route = scope.get("route")
    if isinstance(route, Route):
        return str(scope.get("root_path", "")) + route.path
    if isinstance(route, Mount) and not isinstance(route.app, Starlette | Router):
        return str(scope.get("root_path", "")) + "/{path}"  # a leaf mount, e.g. static files
    return "(unmatched)"


def healthz(pool_key: str) -> Callable[[Request], Awaitable[Response]]:
    """/healthz of the app whose pool is ``request.state.<pool_key>``."""

    async def check(request: Request) -> Response:
        return await database_health(getattr(request.state, pool_key))

    return check


async def database_health(pool: Pool) -> Response:
    """200 when the database answers within two seconds, 503 otherwise."""
    try:
        async with asyncio.timeout(2):
            async with pool.acquire() as conn:
                await conn.fetchval("SELECT 1")
    except Exception:  # any failure to reach the database is the answer itself
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})


StateLifespan = Callable[[Starlette], contextlib.AbstractAsyncContextManager[dict[str, Any]]]


def pool_lifespan(
    settings: Settings,
    pool: Pool | None,
    role: Role,
    pool_key: str,
    shared: Mapping[str, bytes],
) -> StateLifespan:
    """Give handlers ``request.state.<pool_key>`` and ``.settings``; open and close a pool of
    our own, whose connections take ``role``, unless one is given (tests give pools with the
    role). Each app has a key of its own: mounted together, their states are merged. The
    ``shared`` secrets are checked against those the database was set up with."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        if pool is not None:
            async with pool.acquire() as conn:
                await check_shared(conn, shared)
            yield {pool_key: pool, "settings": settings}
            return
        if settings.database_url is None:
            raise ConfigError("no database URL: set FEEDBACK_DATABASE_URL")
        async with create_pool(
            settings.database_url,
            role=role,
            statement_timeout_ms=settings.statement_timeout_ms,
            max_size=settings.pool_size,
        ) as owned:
            async with owned.acquire() as conn:
                await check_shared(conn, shared)
            yield {pool_key: owned, "settings": settings}

    return lifespan


async def no_favicon(request: Request) -> Response:
    """Browsers ask for /favicon.ico on their own; answer without a 404 in their console."""
    return Response(status_code=204, headers={"cache-control": "public, max-age=86400"})


class App(Starlette):
    """Starlette with ``Edge`` outside everything, even the server-error handler, so that a
    500 gets the security headers too."""

    def __init__(self, *, edge: Mapping[str, Any], **options: Any) -> None:
        self.edge = dict(edge)
        super().__init__(**options)

    def build_middleware_stack(self) -> ASGIApp:
        return Edge(super().build_middleware_stack(), **self.edge)


async def slow_body(request: Request, exc: Exception) -> Response:
    return PlainTextResponse("The request body did not arrive in time.", status_code=408)


async def too_large(request: Request, exc: Exception) -> Response:
    return PlainTextResponse("The request body is too large.", status_code=413)


async def client_gone(request: Request, exc: Exception) -> Response:
    """The client closed the connection before its body had arrived: nothing to answer (this
    reaches no one) and nothing to log as an error."""
    return PlainTextResponse("The request was not received in full.", status_code=400)


def create_web_app(
    settings: Settings,
    routes: Sequence[BaseRoute],
    *,
    lifespan: StateLifespan,
    csp: str = CONTENT_SECURITY_POLICY,
    max_body_size: int = 64 * 1024,
    exception_handlers: Mapping[Any, Any] | None = None,
    log_all: bool = True,
) -> Starlette:
    """``exception_handlers`` should answer ``DATABASE_GONE`` (503, Retry-After) and 500."""
    return App(
        edge={
            "csp": csp,
            "https": settings.public_url.startswith("https:"),
            "log_all": log_all,
            "max_body": max_body_size,
        },
        debug=settings.debug,
        exception_handlers={
            SlowBody: slow_body,
            BodyTooLarge: too_large,
            ClientDisconnect: client_gone,
            **(exception_handlers or {}),
        },
        routes=[*routes, Route("/favicon.ico", no_favicon, include_in_schema=False)],
        middleware=[Middleware(CompressReads)],
        lifespan=lifespan,
    )


def combine(apps: Mapping[str, Starlette]) -> Starlette:
    """Mount ``apps`` at their prefixes on one port; their lifespans run together and their
    states are merged (mounted apps do not run lifespans of their own). One app at the root
    is served as it is."""
    if list(apps) == [""]:
        return apps[""]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[dict[str, Any]]:
        state: dict[str, Any] = {}
        async with contextlib.AsyncExitStack() as stack:
            for app in apps.values():
                entered = await stack.enter_async_context(app.router.lifespan_context(app))
                state.update(entered or {})
            yield state

    ordered = sorted(apps.items(), key=lambda item: -len(item[0]))  # longest prefix first
    # A prefix without its slash (/staff, the address people type) goes to the app's home,
    # with the app's headers, rather than to the app at the root.
    to_home: list[BaseRoute] = [
        Route(prefix, Edge(RedirectResponse(prefix + "/", status_code=308), **app.edge))
        for prefix, app in ordered
        if prefix and isinstance(app, App)
    ]
    mounts: list[BaseRoute] = [Mount(prefix, app=app) for prefix, app in ordered]
    return Starlette(routes=to_home + mounts, lifespan=lifespan)
