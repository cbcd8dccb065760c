"""The demo: one organisation with two programs, the default survey and a manager login."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from feedback.config import Settings
from feedback.db import Connection
from feedback.publish.passwords import hash_password
from feedback.secretfiles import prepare_data_dir
from feedback.surveys import load_definition

ORGANISATION = ("demo", "Demo Organisation")
PROGRAMS = (("shelter", "Safe Housing Program"), ("legal", "Legal Support Program"))
MANAGER_EMAIL = "manager@demo.example"


@dataclass(frozen=True, slots=True)
class DemoFacts:
    base_url: str
    staff_url: str
    healthz_url: str
    manager_email: str
    manager_password: str


async def seed(conn: Connection, settings: Settings) -> DemoFacts:
    """Create the demo organisation once; give the manager a fresh password every run."""
    password = secrets.token_urlsafe(12)
    password_hash = await hash_password(password)
    async with conn.transaction():
        organisation_id = await conn.fetchval(
            """
            INSERT INTO organisations (slug, name) VALUES ($1, $2)
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
        definition = load_definition()
        await conn.execute(
            """
            INSERT INTO surveys (organisation_id, slug, version, definition)
            VALUES ($1, $2, $3, $4::jsonb)
            ON CONFLICT (organisation_id, slug, version) DO NOTHING
            """,
            organisation_id,
            definition["slug"],
            definition["version"],
            json.dumps(definition),
        )
        manager_id = await conn.fetchval(
            """
            INSERT INTO users (organisation_id, email, display_name, role, password_hash)
            VALUES ($1, $2, 'Demo Manager', 'manager', $3)
            ON CONFLICT (email) DO UPDATE SET password_hash = EXCLUDED.password_hash,
                                              disabled_at = NULL
            RETURNING id
            """,
            organisation_id,
            MANAGER_EMAIL,
            password_hash,
        )
        await conn.executemany(
            """
            INSERT INTO user_programs (organisation_id, user_id, program_id) VALUES ($1, $2, $3)
            ON CONFLICT DO NOTHING
            """,
            [(organisation_id, manager_id, program_id) for program_id in program_ids],
        )
    return DemoFacts(
        base_url=settings.public_url,
        staff_url=f"{settings.public_url}/staff",
        healthz_url=f"{settings.public_url}/healthz",
        manager_email=MANAGER_EMAIL,
        manager_password=password,
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
            f"  these facts as JSON: {path}",
        )
    )
