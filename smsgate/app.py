"""create_app(): routers, error handlers and the database, wired once."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import httpx
from fastapi import APIRouter, FastAPI
from starlette._utils import get_route_path
from starlette.datastructures import MutableHeaders
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from smsgate import __version__
from smsgate.accounts.routes import router as accounts_router
from smsgate.billing.ratelimit import limiter_for
from smsgate.billing.routes import router as billing_router
from smsgate.campaigns.routes import router as campaigns_router
from smsgate.compat.routes import router as compat_router
from smsgate.config import Settings, get_settings
from smsgate.conversations.routes import router as conversations_router
from smsgate.dashboard.routes import install as install_dashboard
from smsgate.dashboard.routes import router as dashboard_router
from smsgate.devices.routes import router as devices_router
from smsgate.errors import install_error_handlers
from smsgate.kit import observe
from smsgate.kit.batching import Batcher
from smsgate.kit.logs import RequestIds
from smsgate.kit.logs import configure as configure_logs
from smsgate.kit.responses import JSONResponse
from smsgate.messages import reports
from smsgate.messages.routes import router as messages_router
from smsgate.messages.sending.writer import SendWriter
from smsgate.messages.service import Sender
from smsgate.mobile.routes import router as mobile_router
from smsgate.notify.hub import Hub
from smsgate.notify.pgnotify import PgBridge
from smsgate.ops import docs
from smsgate.ops.aliases import V1Aliases
from smsgate.ops.health import router as health_router
from smsgate.ops.limits import RequestLimits
from smsgate.ops.metrics import Metrics, RequestMetrics
from smsgate.ops.metrics import install as install_metrics
from smsgate.ops.metrics import router as metrics_router
from smsgate.ops.openapi import install_openapi
from smsgate.storage.db import Database
from smsgate.storage.migrate import head_revision
from smsgate.webhooks.routes import router as webhooks_router
from smsgate.whatsapp.routes import router as whatsapp_router
from smsgate.worker.jobs import EmbeddedWorker

YOUNG_GC_THRESHOLD = 10_000  # net new container objects before a young collection


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logs(settings.log_level, settings.log_format)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Everything loaded so far (modules, phone-number metadata) lives as long as the process:
        # keep it out of the garbage collector's full passes, which otherwise stall requests.
        gc.collect()
        gc.freeze()
        # Under load a few dozen requests are in flight at once, each holding a few dozen
        # container objects; with the default threshold (700) their sum alone kept setting off
        # young collections that found nothing to free (a load of sends left no cyclic garbage
        # at all) and moved the in-flight objects up the generations: 35-45 µs of CPU a send,
        # measured with gc.callbacks. A threshold above what is ever in flight leaves the
        # collector for real cycles; a young collection then scans at most this many objects.
        gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])
        # before the server takes requests: /health/ready says 200 only once a send can complete
        await app.state.send_writer.start()
        worker = EmbeddedWorker(app)
        if settings.embedded_worker:
            worker.start()
        else:
            worker.start_presence_only()
        bridge = None if settings.is_sqlite else PgBridge(app.state.hub, settings)
        if bridge is not None:
            bridge.start()
        yield
        app.state.hub.close_all()
        if bridge is not None:
            await bridge.stop()
        await worker.stop()
        await app.state.webhook_http.aclose()
        await app.state.send_writer.close()
        await app.state.reports.close()
        await app.state.db.dispose()

    app = FastAPI(
        title="SMSGate",
        version=__version__,
        description="Android phones and WhatsApp numbers behind one messaging REST API. "
        "Every `/api/<resource>` path below is also served as `/api/v1/<resource>`.",
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc without a CDN: ops/docs.py
        redoc_url=None,
        default_response_class=JSONResponse,  # pydantic-core writes the JSON (kit/responses.py)
    )
    app.state.settings = settings
    app.state.db = Database(settings)
    app.state.send_writer = SendWriter(app.state.db)
    # phones' state reports, many requests' in one transaction
    app.state.reports = Batcher(
        partial(reports.report_batch, app.state.db),
        "smsgate-reports",
        observe=observe.batch("reports"),
    )
    app.state.hub = Hub()
    app.state.sender = Sender(app.state.db, app.state.send_writer, app.state.hub)
    app.state.rate_limiter = limiter_for(app.state.db)
    app.state.metrics = Metrics(app.state.db, app.state.hub)
    install_metrics(app.state.metrics)
    app.state.webhook_http = httpx.AsyncClient(
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50)
    )
    app.state.schema_head = head_revision(settings)
    install_error_handlers(app)
    app.add_middleware(
        RequestLimits,
        max_body=settings.max_body_bytes,
        max_attachment_body=settings.max_attachment_body_bytes,
        max_headers=settings.max_header_bytes,
        body_timeout=settings.body_timeout_seconds,
    )
    app.add_middleware(RateLimitHeaders)
    app.add_middleware(RequestMetrics)
    app.add_middleware(RequestIds)
    if settings.trusted_proxies:
        # outermost, so throttles, logs and links see the client behind the proxy
        proxies = [p.strip() for p in settings.trusted_proxies.split(",") if p.strip()]
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=proxies)
    # Routes are matched in order, one pattern after another: the hot paths (sends, phones'
    # pulls and reports) come first.
    _add_routes(
        app,
        messages_router,
        mobile_router,
        health_router,
        accounts_router,
        whatsapp_router,
        devices_router,
        webhooks_router,
        conversations_router,
        campaigns_router,
        billing_router,
        compat_router,
        dashboard_router,
        metrics_router,
        docs.router,
    )
    docs.install(app)
    install_dashboard(app)
    install_openapi(app, settings)
    for route in app.router.routes:
        _quick_miss(route)
    return app


def _add_routes(app: FastAPI, *routers: APIRouter) -> None:
    """The routers' routes become the app's own, in order. FastAPI's include_router keeps an
    included router as a layer of its own that matches each of its requests twice (8-18 µs a
    request, measured on the app called in-process). Our routers carry their prefix and tags
    on their routes already and take no arguments when included: the routes are the same.
    FastAPI's own pages (the OpenAPI document, /docs, /redoc), which it adds first, go after
    them: every send was matched against those four patterns before its own."""
    own = list(app.router.routes)
    app.router.routes[:] = [route for router in routers for route in router.routes]
    app.router.routes.extend(own)
    app.router.routes.append(V1Aliases(app.router))  # last: tried only when nothing matched


def _quick_miss(route: BaseRoute) -> None:
    """Let the route turn away a path that does not start with its literal prefix (its path up
    to the first parameter) before the full match. Starlette tries the routes in order, and a
    full match (FastAPI's route context, the path's regular expression) costs about a
    microsecond: a request for the 83rd route, the third-party send, paid ~80 µs to be routed.
    A path that lacks the prefix cannot match the route's anchored pattern, so the answer is
    the same: no match (tests/test_routing.py compares the two for every route)."""
    path = getattr(route, "path", None)
    prefix = path.split("{", 1)[0] if isinstance(path, str) else ""
    if not prefix:
        return
    full_match = route.matches

    def matches(scope: Scope) -> tuple[Match, Scope]:
        if not get_route_path(scope).startswith(prefix):
            return Match.NONE, {}
        return full_match(scope)

    route.matches = matches  # type: ignore[method-assign]


class RateLimitHeaders:
    """Adds the RateLimit headers of the request's credential to every answer (pure ASGI:
    nothing is buffered)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                decision = scope.get("state", {}).get("rate_limit")
                if decision is not None:
                    headers = MutableHeaders(scope=message)
                    for name, value in decision.headers().items():
                        if name.lower() not in headers:
                            headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
