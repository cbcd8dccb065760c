"""The demo: one organisation with two large programs and a small one, the default survey,
plans the advisor recommended, and manager and admin logins."""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from feedback.aggregate.keys import create_collection_key
from feedback.aggregate.signing import create_signing_key
from feedback.cli import demo_data
from feedback.config import Settings
from feedback.db import Connection
from feedback.passwords import hash_password
from feedback.publish import views
from feedback.publish.invitations import create_batch, create_open_link, survey_url
from feedback.secretfiles import ServiceSecrets, load_or_create_secret, prepare_data_dir
from feedback.wrapping import INSECURE_TEST, kdf_cost

ORGANISATION = ("demo", "Demo Organisation")
PROGRAMS = (
    ("shelter", "Safe Housing Program"),
    ("legal", "Legal Support Program"),
    ("drop-in", "Drop-in Centre"),  # small: about 60 respondents a year
)
MANAGER_EMAIL = "manager@demo.example"
ADMIN_EMAIL = "admin@demo.example"
SMS_NUMBER = "+15550009999"  # the demo organisation's (simulated) gateway number


@dataclass(frozen=True, slots=True)
class DemoFacts:
    base_url: str
    staff_url: str
    healthz_url: str
    manager_email: str
    manager_password: str
    admin_email: str
    admin_password: str
    survey_link: str
    open_link: str
    collection_public_key: str
    key_passphrase_file: str
    sms_webhook_url: str
    sms_auth_token: str
    sms_number: str
    sms_start_code: str
    publication_bundle: str
    signing_public_key: str
    network_bundle: str
    network_public_key: str


async def seed(conn: Connection, settings: Settings, service_secrets: ServiceSecrets) -> DemoFacts:
    """Create the demo organisation once (with its keys); give the manager a fresh password
    and make a fresh single-use link every run."""
    password = secrets.token_urlsafe(12)
    password_hash = await hash_password(password)
    admin_password = secrets.token_urlsafe(12)
    admin_hash = await hash_password(admin_password)
    async with conn.transaction():
        organisation_id = await conn.fetchval(
            """
            INSERT INTO organisations (slug, name, comments_enabled, epsilon_per_year)
            VALUES ($1, $2, true, 10)
            ON CONFLICT (slug) DO UPDATE SET name = EXCLUDED.name
            RETURNING id
            """,
            *ORGANISATION,
        )
        program_ids = []
        for slug, name in PROGRAMS:
            program_ids.append(
                await conn.fetchval(
                    """
                    INSERT INTO programs (organisation_id, slug, name) VALUES ($1, $2, $3)
                    ON CONFLICT (organisation_id, slug) DO UPDATE SET name = EXCLUDED.name
                    RETURNING id
                    """,
                    organisation_id,
                    slug,
                    name,
                )
            )
        await demo_data.add_default_survey(conn, organisation_id)
        manager_id = await conn.fetchval(
            """
            INSERT INTO users (organisation_id, email, display_name, role, password_hash)
            VALUES ($1, $2, 'Demo Manager', 'manager', $3)
            ON CONFLICT (email) DO UPDATE SET password_hash = EXCLUDED.password_hash,
                                              disabled_on = NULL
            RETURNING id
            """,
            organisation_id,
            MANAGER_EMAIL,
            password_hash,
        )
        await conn.execute(
            """
            INSERT INTO users (organisation_id, email, display_name, role, password_hash)
            VALUES ($1, $2, 'Demo Admin', 'admin', $3)
            ON CONFLICT (email) DO UPDATE SET password_hash = EXCLUDED.password_hash,
                                              disabled_on = NULL, next_try = NULL
            """,
            organisation_id,
            ADMIN_EMAIL,
            admin_hash,
        )
        await conn.executemany(
            """
            INSERT INTO user_programs (organisation_id, user_id, program_id) VALUES ($1, $2, $3)
            ON CONFLICT DO NOTHING
            """,
            [(organisation_id, manager_id, program_id) for program_id in program_ids],
        )
    passphrase_file = prepare_data_dir(settings.data_dir) / "secrets" / "demo_key_passphrase"
    passphrase = load_or_create_secret(settings.data_dir, "demo_key_passphrase").hex()
    cost = kdf_cost(insecure_test=settings.insecure_test_kdf)
    if (
        await conn.fetchval(
            "SELECT count(*) FROM collection_keys WHERE organisation_id = $1", organisation_id
        )
        == 0
    ):
        async with conn.transaction():
            await create_collection_key(
                conn, organisation_id=organisation_id, passphrase=passphrase, cost=cost
            )
            await create_signing_key(
                conn, organisation_id=organisation_id, passphrase=passphrase, cost=cost
            )
    public_key = await conn.fetchval(
        "SELECT public_key FROM collection_keys "
        "WHERE organisation_id = $1 AND retired_week IS NULL",
        organisation_id,
    )
    await demo_data.seed_submissions(conn, organisation_id)
    await demo_data.release_past_periods(conn, organisation_id, passphrase)
    await views.draw_missing(conn)  # the program pages, as the worker draws them
    folder = settings.data_dir / "publications"
    bundle, signing_key = await demo_data.publish_year(conn, organisation_id, passphrase, folder)
    members = [(organisation_id, bundle)]
    # The network's other members and the network itself stand in for other installations
    # and guard synthetic answers only: their keys take libsodium's interactive cost, so
    # that the demo starts in seconds (the demo organisation's keys keep the sensitive one).
    for slug, name, *program in demo_data.MEMBERS:
        member_id = await demo_data.seed_member(
            conn, slug, name, (program[0], program[1]), passphrase, INSECURE_TEST
        )
        member_bundle, _ = await demo_data.publish_year(conn, member_id, passphrase, folder / slug)
        members.append((member_id, member_bundle))
    network, network_key = await demo_data.seed_network(
        conn, members, passphrase, folder, INSECURE_TEST
    )
    (folder / "demo.pub").write_text(signing_key)
    (folder / "coalition.pub").write_text(network_key)
    batch = await create_batch(conn, program_id=program_ids[0], count=1)
    open_token = await create_open_link(conn, program_id=program_ids[0])
    sms = await create_batch(
        conn,
        program_id=program_ids[0],
        count=1,
        medium="sms",
        sms_code_key=service_secrets.sms_code_key,
    )
    await conn.execute(
        "UPDATE organisations SET sms_number = $2 WHERE id = $1", organisation_id, SMS_NUMBER
    )
    return DemoFacts(
        base_url=settings.public_url,
        staff_url=f"{settings.public_url}/staff",
        healthz_url=f"{settings.public_url}/healthz",
        manager_email=MANAGER_EMAIL,
        manager_password=password,
        admin_email=ADMIN_EMAIL,
        admin_password=admin_password,
        survey_link=survey_url(settings.public_url, batch.tokens[0]),
        open_link=survey_url(settings.public_url, open_token),
        collection_public_key=base64.b64encode(public_key).decode(),
        key_passphrase_file=str(passphrase_file),
        sms_webhook_url=f"{settings.public_url}/sms/twilio",
        sms_auth_token=service_secrets.sms_auth_token.decode(),
        sms_number=SMS_NUMBER,
        sms_start_code=sms.tokens[0],
        publication_bundle=str(bundle),
        signing_public_key=signing_key,
        network_bundle=str(network),
        network_public_key=network_key,
    )


def write_facts(data_dir: Path, facts: DemoFacts) -> Path:
    """demo.json in the data directory, readable only by this user (it holds a password)."""
    path = prepare_data_dir(data_dir) / "demo.json"
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(asdict(facts), handle, indent=2)
    tmp.replace(path)
    return path


def describe(facts: DemoFacts, path: Path) -> str:
    return "\n".join(
        (
            "Demo is running. Ctrl-C stops it.",
            f"  survivor pages:  {facts.base_url}/",
            f"  staff pages:     {facts.staff_url}",
            f"  health check:    {facts.healthz_url}",
            f"  manager login:   {facts.manager_email}",
            f"  password:        {facts.manager_password}",
            f"  admin login:     {facts.admin_email}",
            f"  password:        {facts.admin_password}",
            "  a fresh single-use survey link (works once):",
            f"    {facts.survey_link}",
            "  the demo program's open link (for posters):",
            f"    {facts.open_link}",
            f"  collection public key: {facts.collection_public_key}",
            f"  key passphrase file:   {facts.key_passphrase_file}",
            "  try the SMS survey from another terminal (start by sending the code):",
            f"    feedback sms-sim    then type {facts.sms_start_code}",
            f"  a signed publication: {facts.publication_bundle}",
            f"    check it: feedback verify {facts.publication_bundle} "
            f"--key {Path(facts.publication_bundle).parent / 'demo.pub'}",
            f"  a signed network summary of three organisations: {facts.network_bundle}",
            f"    check it: feedback verify {facts.network_bundle} "
            f"--key {Path(facts.network_bundle).parent / 'coalition.pub'}",
            f"  these facts as JSON: {path}",
        )
    )
