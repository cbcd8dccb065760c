"""The audit log: who did what, when. Staff actions only; the table refuses changes."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from feedback.db import Connection


async def record(
    conn: Connection,
    *,
    organisation_id: uuid.UUID | None,
    user_id: uuid.UUID | None,
    action: str,
    subject: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO audit_log (organisation_id, user_id, action, subject, details) "
        "VALUES ($1, $2, $3, $4, $5)",
        organisation_id,
        user_id,
        action,
        subject,
        dict(details or {}),
    )
