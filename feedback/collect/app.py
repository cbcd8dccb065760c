"""The survivor application: everything a survivor's phone talks to. It holds public keys
only (read with each invitation), and no session, cookie or client address is kept."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from feedback import web
from feedback.collect import views
from feedback.collect.batching import SealedBatcher
from feedback.collect.pages import STATIC, CachedStatic, Pages
from feedback.collect.sms import webhook
from feedback.collect.sms.conversation import Context
from feedback.collect.sms.gateways import Gateway, Twilio, Vonage
from feedback.collect.survey_cache import SurveyCache
from feedback.config import Settings
from feedback.db import SURVIVOR, Pool
from feedback.i18n import load_catalogues
from feedback.limits import RateLimiter
from feedback.phones import idle_seal
from feedback.secretfiles import ServiceSecrets

MAX_BODY = 32 * 1024  # a sealed envelope is at most 16 KiB (about 22 KiB as base64)

ROUTES = [
    Route("/healthz", web.healthz("survivor_pool"), name="healthz"),
    Route("/s/{token}", views.show_survey, methods=["GET"], name="survey"),
    Route("/s/{token}", views.submit_survey, methods=["POST"], name="submit_survey"),
    Route("/withdraw", views.show_withdraw, methods=["GET"], name="withdraw"),
    Route("/withdraw", views.withdraw, methods=["POST"], name="submit_withdraw"),
    Route("/sms/{gateway}", webhook.inbound, methods=["POST"], name="sms_inbound"),
    Mount("/static", app=CachedStatic(directory=STATIC), name="static"),
]


def gateways(
    settings: Settings, secrets: ServiceSecrets, client: httpx.AsyncClient
) -> dict[str, Gateway]:
    """Twilio always (its auth token is generated for the demo when not set); Vonage when
    its keys are set."""
    found: dict[str, Gateway] = {"twilio": Twilio(secrets.sms_auth_token)}
    if settings.vonage is not None:
        api_key, api_secret, signature_secret, api_url = settings.vonage
        found["vonage"] = Vonage(
            api_key=api_key,
            api_secret=api_secret,
            signature_secret=signature_secret,
            api_url=api_url,
            client=client,
        )
    return found


def create_app(
    settings: Settings,
    secrets: ServiceSecrets,
    *,
    pool: Pool | None = None,
    sms_transport: httpx.AsyncBaseTransport | None = None,
) -> Starlette:
    """The survivor app; ``sms_transport`` carries replies to gateways' send APIs (tests give
    a fake that speaks the provider's wire format)."""
    catalogues = load_catalogues()
    surveys = SurveyCache()
    pages = Pages(catalogues, exit_url=settings.quick_exit_url)
    base = web.pool_lifespan(
        settings,
        pool,
        SURVIVOR,
        "survivor_pool",
        {"PHONE_HMAC_KEY": secrets.phone_hmac, "SMS_CODE_KEY": secrets.sms_code_key},
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with (
            base(app) as state,
            httpx.AsyncClient(timeout=10, transport=sms_transport) as sms_client,
        ):
            yield {
                **state,
                "survivor": views.SurvivorState(
                    pool=state["survivor_pool"],
                    pages=pages,
                    catalogues=catalogues,
                    receipt_key=secrets.phone_hmac,
                    submit_limiter=RateLimiter(limit=5, window=600),
                    batcher=SealedBatcher(state["survivor_pool"]),
                    withdraw_limiter=RateLimiter(limit=30, window=600),
                    receipt_limiter=RateLimiter(limit=5, window=600),
                    surveys=surveys,
                ),
                "sms": webhook.sms_state(
                    state["survivor_pool"],
                    Context(
                        catalogues=catalogues,
                        phone_secret=secrets.phone_hmac,
                        sms_code_key=secrets.sms_code_key,
                        surveys=surveys,
                        idle=dt.timedelta(minutes=settings.sms_idle_minutes),
                        idle_seal=idle_seal(secrets.phone_hmac),
                    ),
                    gateways=gateways(settings, secrets, sms_client),
                    public_url=settings.public_url,
                ),
            }

    return web.create_web_app(
        settings,
        ROUTES,
        lifespan=lifespan,
        max_body_size=MAX_BODY,
        exception_handlers={
            500: views.server_error,
            web.SlowBody: views.slow_body,
            web.BodyTooLarge: views.too_large,
            **dict.fromkeys(web.DATABASE_GONE, views.unavailable),
        },
        log_all=False,  # no line per survivor request: its time would date them
    )
