"""Where the three packages meet: the web apps on one port and the worker's jobs. The CLI is
the one place that imports collect, aggregate and publish together."""

from __future__ import annotations

from typing import Literal

from starlette.applications import Starlette

from feedback import web
from feedback.aggregate import jobs as aggregate_jobs
from feedback.aggregate.scheduled import scheduled_releases_job
from feedback.cli.publishing import publications_job
from feedback.collect import jobs as collect_jobs
from feedback.collect.app import create_app as create_survivor_app
from feedback.config import Settings
from feedback.db import Pool
from feedback.jobs import Job
from feedback.publish import jobs as publish_jobs
from feedback.publish.app import STAFF_PREFIX
from feedback.publish.app import create_app as create_staff_app
from feedback.secretfiles import ServiceSecrets, check_shared, resolve_secrets

AppChoice = Literal["both", "survivor", "staff"]


def build_web_app(
    settings: Settings,
    secrets: ServiceSecrets,
    which: AppChoice = "both",
    *,
    survivor_pool: Pool | None = None,
    staff_pool: Pool | None = None,
) -> Starlette:
    """The survivor app at /, the staff app at /staff, or one of them alone. Each has a pool
    of its own whose connections take its role: given here (tests), or opened by the app on
    ``settings.database_url``. Staff traffic can then never take the survivor app's
    connections."""
    apps: dict[str, Starlette] = {}
    if which in ("both", "survivor"):
        apps[""] = create_survivor_app(settings, secrets, pool=survivor_pool)
    if which in ("both", "staff"):
        apps[STAFF_PREFIX] = create_staff_app(
            settings, secrets.session, secrets.sms_code_key, pool=staff_pool, prefix=STAFF_PREFIX
        )
    combined = web.combine(apps)
    if settings.trusted_proxies:
        combined.add_middleware(web.ForwardedScheme, trusted=settings.trusted_proxies)
    return combined


async def worker_phone_key(settings: Settings, pool: Pool) -> bytes:
    """The phone HMAC key the worker shares with the survivor app (it opens the moments SMS
    conversations go idle): refused at the worker's start, like any shared secret, if it is
    not the database's (the purge checks it again at each run)."""
    phone_hmac = resolve_secrets(settings).phone_hmac
    async with pool.acquire() as conn:
        await check_shared(conn, {"PHONE_HMAC_KEY": phone_hmac})
    return phone_hmac


def worker_jobs(settings: Settings, database_url: str, phone_hmac: bytes) -> tuple[Job, ...]:
    """Every scheduled job, whichever package owns it; scheduled releases only where the
    worker has been given passphrases. ``phone_hmac`` (the survivor app's) opens the moments
    SMS conversations go idle."""
    jobs: tuple[Job, ...] = (
        *collect_jobs.jobs(phone_hmac, settings.mix_every),
        *aggregate_jobs.JOBS,
        *publish_jobs.JOBS,
    )
    if settings.key_passphrase_dir is not None:
        jobs += (scheduled_releases_job(settings.key_passphrase_dir, database_url),)
    # Without passphrases, it records why each due publication was not made.
    jobs += (publications_job(settings.key_passphrase_dir, database_url),)
    return jobs
