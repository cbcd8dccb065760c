"""Making a publication: the worker's composition of the publish side (the files, built from
releases only), the aggregate side (the releases a schedule still lacks, and the signing key)
and the bundle format. Only the worker and the CLI run it: the staff app asks for one through
``publication_requests`` and never holds a key.

A series' publications are made one at a time, under a transaction-level advisory lock on the
organisation and series, and a period is published once (a unique index): two workers running
the same schedule at once make one publication.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from feedback.aggregate.keys import KeyFileError, unlock_all
from feedback.aggregate.scheduled import due, make_planned
from feedback.aggregate.signing import unlock_signing_key
from feedback.bundles import MANIFEST, SIGNATURE, archive, sha256, write_bundle
from feedback.db import WORKER, Connection, connect
from feedback.errors import FeedbackError
from feedback.jobs import Job
from feedback.minisign import PublicKey
from feedback.offload import DRAWING
from feedback.publish import publications
from feedback.publish.publications import NothingToPublish
from feedback.schedules import Schedule, ScheduleError, schedule_of, schedules_of
from feedback.secretfiles import read_passphrase_file
from feedback.stats.periods import BadPeriod, Period
from feedback.wrapping import WrongPassphrase

log = logging.getLogger(__name__)

KEY_FILE = "signing-key.pub"  # the organisation's public key, for convenience (not trust)


class PublishError(FeedbackError):
    pass


@dataclass(frozen=True, slots=True)
class Published:
    id: uuid.UUID
    series: str
    sequence: int
    period: str
    created: bool  # False: it had been published already


async def existing(conn: Connection, schedule: Schedule, period: Period) -> Published | None:
    row = await conn.fetchrow(
        """
        SELECT id, sequence FROM publications
         WHERE organisation_id = $1 AND series = $2 AND period = $3 AND corrects IS NULL
        """,
        schedule.organisation_id,
        schedule.series,
        str(period),
    )
    if row is None:
        return None
    return Published(row["id"], schedule.series, row["sequence"], str(period), False)


async def make_missing_releases(
    conn: Connection, schedule: Schedule, period: Period, passphrase: str, database_url: str | None
) -> list[str]:
    """Make the planned releases inside ``period`` that have not been made; returns why any
    was refused (the budget)."""
    today = dt.datetime.now(dt.UTC).date()
    work = [
        (line, p)
        for line, p in await due(conn, schedule.organisation_id, today)
        if publications.within(p, period)
        and (schedule.programs is None or line.program_id in schedule.programs)
    ]
    if not work:
        return []
    keys = await unlock_all(conn, schedule.organisation_id, passphrase)
    made = await make_planned(conn, work, keys=keys, database_url=database_url)
    del keys
    return [f"{m.period}: {m.refused}" for m in made if m.refused]


async def publish(
    conn: Connection,
    schedule: Schedule,
    period: Period,
    *,
    passphrase: str,
    issued: dt.date,
    corrects: int | None = None,
    why: str | None = None,
) -> Published:
    """Build, sign and store the publication of ``period`` in ``schedule``'s series (or return
    the one made already); with ``corrects``, a new publication correcting that one."""
    if period.granularity != schedule.granularity:
        raise PublishError(
            f"{period} is not a period of the series {schedule.series} "
            f"({schedule.describe()}): give a {schedule.granularity}"
        )
    if period.end > issued:
        raise PublishError(
            f"{period} has not ended: a publication shows a whole period, once it is over"
        )
    org = await conn.fetchrow(
        "SELECT slug, name FROM organisations WHERE id = $1", schedule.organisation_id
    )
    if org is None:
        raise PublishError(f"no organisation {schedule.organisation_id}")
    async with conn.transaction():
        await lock_series(conn, schedule.organisation_id, schedule.series)
        if corrects is None and (found := await existing(conn, schedule, period)) is not None:
            return found
        sequence, previous = await next_in_series(conn, schedule.organisation_id, schedule.series)
        if corrects is not None:
            await _check_correction(conn, schedule, period, corrects, why)
        heading = publications.Heading(
            org["slug"],
            org["name"],
            schedule.series,
            sequence,
            period,
            issued,
            await next_due(conn, schedule, period),
            corrects,
            why,
        )
        gathered = await publications.gather(
            conn, schedule.organisation_id, heading, schedule.programs
        )
        files = await DRAWING.run(publications.files, gathered)
        publication_id = await sign_and_store(
            conn,
            Bundle(
                schedule.organisation_id,
                org["slug"],
                schedule.series,
                sequence,
                period,
                tuple(p.id for p in gathered.programs if p.id is not None),
                issued,
                heading.next_due,
                previous,
                corrects,
                why,
            ),
            files,
            passphrase,
        )
    log.info("published %s %s %d (%s)", org["slug"], schedule.series, sequence, period)
    return Published(publication_id, schedule.series, sequence, str(period), True)


async def next_due(conn: Connection, schedule: Schedule, period: Period) -> dt.date:
    """When the series' next publication is due: after the latest period it has published or
    is publishing (a correction, or a late publication of an earlier period, promises no date
    already past)."""
    published = [
        Period.parse(row["period"])
        for row in await conn.fetch(
            "SELECT DISTINCT period FROM publications WHERE organisation_id = $1 AND series = $2",
            schedule.organisation_id,
            schedule.series,
        )
    ]
    latest = max([period, *published], key=lambda p: p.start)
    return schedule.next_due(latest)


async def lock_series(conn: Connection, organisation_id: uuid.UUID, series: str) -> None:
    """One publication of a series at a time (held to the end of the transaction)."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext('feedback.publications'), hashtext($1))",
        f"{organisation_id}/{series}",
    )


async def next_in_series(
    conn: Connection, organisation_id: uuid.UUID, series: str
) -> tuple[int, str | None]:
    """The next sequence number of a series, and the SHA-256 of its last manifest."""
    last = await conn.fetchrow(
        """
        SELECT sequence, manifest_sha256 FROM publications
         WHERE organisation_id = $1 AND series = $2 ORDER BY sequence DESC LIMIT 1
        """,
        organisation_id,
        series,
    )
    return (1, None) if last is None else (last["sequence"] + 1, last["manifest_sha256"])


@dataclass(frozen=True, slots=True)
class Bundle:
    """What a publication's manifest and row say about it."""

    organisation_id: uuid.UUID
    organisation: str  # short name
    series: str
    sequence: int
    period: Period
    programs: tuple[uuid.UUID, ...]
    issued: dt.date
    next_due: dt.date | None
    previous: str | None
    corrects: int | None = None
    why: str | None = None


async def sign_and_store(
    conn: Connection, bundle: Bundle, files: dict[str, bytes], passphrase: str
) -> uuid.UUID:
    """Sign ``files`` as a bundle with the organisation's key and store it, whole and by
    file; the caller holds the series' lock."""
    key_id, signing_key = await unlock_signing_key(conn, bundle.organisation_id, passphrase)
    public = PublicKey.of(bytes(signing_key.verify_key))
    files = {
        **files,
        KEY_FILE: public.file(f"{bundle.organisation} signing key {public.hex_id}").encode(),
    }
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / f"{bundle.organisation}-{bundle.series}-{bundle.sequence}"
        write_bundle(
            folder,
            files,
            organisation=bundle.organisation,
            series=bundle.series,
            sequence=bundle.sequence,
            issued=bundle.issued,
            next_due=bundle.next_due,
            previous=bundle.previous,
            signing_key=signing_key,
            corrects=bundle.corrects,
            why=bundle.why,
        )
        del signing_key
        raw = (folder / MANIFEST).read_bytes()
        signature = (folder / SIGNATURE).read_text()
        packed = archive(folder)
    publication_id: uuid.UUID = await conn.fetchval(
        """
        INSERT INTO publications (organisation_id, series, sequence, period, programs, issued,
                                  next_due, previous_sha256, corrects, why, signing_key_id,
                                  manifest, manifest_sha256, signature, archive)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
        RETURNING id
        """,
        bundle.organisation_id,
        bundle.series,
        bundle.sequence,
        str(bundle.period),
        list(bundle.programs),
        bundle.issued,
        bundle.next_due,
        bundle.previous,
        bundle.corrects,
        bundle.why,
        key_id,
        raw,
        sha256(raw),
        signature,
        packed,
    )
    stored = {**files, MANIFEST: raw, SIGNATURE: signature.encode()}
    await conn.executemany(
        "INSERT INTO publication_files (publication_id, path, data) VALUES ($1, $2, $3)",
        [(publication_id, path, data) for path, data in stored.items()],
    )
    return publication_id


async def _check_correction(
    conn: Connection, schedule: Schedule, period: Period, corrects: int, why: str | None
) -> None:
    if not why or not why.strip():
        raise PublishError("say why the publication is corrected (--why)")
    row = await conn.fetchrow(
        "SELECT period FROM publications WHERE organisation_id = $1 AND series = $2 "
        "AND sequence = $3",
        schedule.organisation_id,
        schedule.series,
        corrects,
    )
    if row is None:
        raise PublishError(f"the series {schedule.series} has no publication {corrects}")
    if row["period"] != str(period):
        raise PublishError(f"publication {corrects} is of {row['period']}, not {period}")


# The worker's job ----------------------------------------------------------------------------


async def _settle(
    conn: Connection, request_id: uuid.UUID, outcome: str, publication: uuid.UUID | None
) -> None:
    await conn.execute(
        "UPDATE publication_requests "
        "SET settled_on = utc_today(), outcome = $2, publication_id = $3 WHERE id = $1",
        request_id,
        outcome[:1000],
        publication,
    )


async def _record_miss(conn: Connection, schedule: Schedule, period: Period, why: str) -> None:
    """Why a scheduled publication was not made, once per reason (the dashboard shows it)."""
    await conn.execute(
        """
        INSERT INTO publication_requests (organisation_id, series, period, settled_on, outcome)
        SELECT $1, $2, $3, now(), $4
         WHERE NOT EXISTS (
             SELECT 1 FROM publication_requests
              WHERE organisation_id = $1 AND series = $2 AND period = $3 AND outcome = $4)
        """,
        schedule.organisation_id,
        schedule.series,
        str(period),
        why[:1000],
    )


async def attempt(
    conn: Connection,
    schedule: Schedule,
    period: Period,
    passphrase_dir: Path | None,
    database_url: str | None,
    today: dt.date,
) -> tuple[Published | None, str]:
    """Publish ``period`` of a schedule if the worker can: make its missing releases first,
    then build and sign. Returns the publication, or None and why not."""
    if (found := await existing(conn, schedule, period)) is not None:
        return found, "published already"
    slug = await conn.fetchval(
        "SELECT slug FROM organisations WHERE id = $1", schedule.organisation_id
    )
    if passphrase_dir is None:
        return (
            None,
            "the worker holds no key passphrases (FEEDBACK_KEY_PASSPHRASE_DIR), so cannot sign",
        )
    path = passphrase_dir / slug
    if not path.exists():
        return None, f"the worker has no passphrase file for {slug}, so cannot sign"
    try:
        passphrase = read_passphrase_file(path)
        refused = await make_missing_releases(conn, schedule, period, passphrase, database_url)
        made = await publish(conn, schedule, period, passphrase=passphrase, issued=today)
    except FeedbackError as exc:
        return None, shown_reason(exc)
    if refused:
        log.warning("publication %s %s: %d planned release(s) refused", slug, period, len(refused))
    return made, f"publication {made.sequence} of {schedule.series}"


# What staff may read of why a publication was not made: our own messages, which count nothing
# about survivors. Others (a release refused because some answers are sealed to keys not
# unlocked, say, whose message counts them) are named by kind only; the key holder's
# `feedback publications publish` says the rest.
SHOWN = (PublishError, NothingToPublish, ScheduleError, BadPeriod, WrongPassphrase, KeyFileError)


def shown_reason(exc: FeedbackError) -> str:
    if isinstance(exc, SHOWN):
        return str(exc)
    return (
        f"refused ({type(exc).__name__}): the key holder's `feedback publications publish` says why"
    )


def publications_job(passphrase_dir: Path | None, database_url: str) -> Job:
    """The worker's job: each schedule's latest due period, when not published yet, and the
    admins' requests to publish now."""

    async def publish_due(claim: Connection) -> str:
        del claim  # a publication commits on a connection of its own
        today = dt.datetime.now(dt.UTC).date()
        outcomes = []
        conn = await connect(database_url, role=WORKER, statement_timeout_ms=0)
        try:
            for schedule in await schedules_of(conn, None):
                period = schedule.latest_due(today)
                made, why = await attempt(
                    conn, schedule, period, passphrase_dir, database_url, today
                )
                if made is None:
                    log.warning("publication of %s %s not made: %s", schedule.series, period, why)
                    await _record_miss(conn, schedule, period, why)
                elif made.created:
                    outcomes.append(f"{schedule.series} {made.sequence}")
            for request in await conn.fetch(
                "SELECT id, organisation_id, series, period FROM publication_requests "
                "WHERE settled_on IS NULL ORDER BY seq"
            ):
                try:
                    schedule = await schedule_of(
                        conn, request["organisation_id"], request["series"]
                    )
                    period = Period.parse(request["period"])
                except FeedbackError as exc:  # each request settles, whatever it holds
                    await _settle(conn, request["id"], shown_reason(exc), None)
                    continue
                except Exception:
                    log.exception("a publication request could not be read")
                    await _settle(conn, request["id"], "refused: not a request we can read", None)
                    continue
                made, why = await attempt(
                    conn, schedule, period, passphrase_dir, database_url, today
                )
                await _settle(conn, request["id"], why, made.id if made else None)
        finally:
            await conn.close()
        return "published: " + (", ".join(outcomes) or "nothing new")

    return Job("publish-scheduled", dt.timedelta(minutes=5), publish_due)
