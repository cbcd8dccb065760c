"""Staff sessions: a random id in a signed, HttpOnly, SameSite=Strict cookie (Secure outside
local development), scoped to the staff app's path. Only the id's SHA-256 is stored, with the
user and an expiry; logging out or disabling the user deletes it. A second cookie of the same
kind marks a browser that logged in before (a known device: see ``accounts.claim``).

CSRF: every state-changing form carries a token derived from the session id (an HMAC under
the session secret), compared in constant time; and the request must come from our own origin
(Sec-Fetch-Site, else Origin), which covers the login form too, before any session exists.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from feedback.db import Connection
from feedback.publish.accounts import DEVICE_KNOWN_FOR, Staff, load_staff

LIFETIME = dt.timedelta(hours=8)
SESSION = b"feedback.session.v1"
DEVICE = b"feedback.device.v2"


def _device_purpose(email: str) -> bytes:
    """Known-device cookies are signed for one account."""
    return DEVICE + b"\0" + hashlib.sha256(email.encode()).digest()


@dataclass(frozen=True, slots=True)
class Session:
    staff: Staff
    id: bytes
    csrf: str


class Sessions:
    def __init__(self, secret: bytes, *, https: bool, path: str) -> None:
        self._secret = secret
        self.https = https
        self.path = path or "/"
        self.cookie = "__Secure-staff" if https else "staff_session"
        self.device_cookie = "__Secure-staff-device" if https else "staff_device"

    def _mac(self, purpose: bytes, sid: bytes) -> bytes:
        return hmac.new(self._secret, purpose + b"\0" + sid, hashlib.sha256).digest()

    def _sign(self, sid: bytes, purpose: bytes = SESSION) -> str:
        mac = self._mac(purpose, sid)[:16]
        return _b64(sid) + "." + _b64(mac)

    def _unsign(self, value: str, purpose: bytes = SESSION) -> bytes | None:
        try:
            raw_sid, raw_mac = value.split(".", 1)
            sid, mac = _unb64(raw_sid), _unb64(raw_mac)
        except ValueError:
            return None
        expected = self._mac(purpose, sid)[:16]
        return sid if len(sid) == 32 and hmac.compare_digest(mac, expected) else None

    def device(self, request: Request, email: str) -> bytes | None:
        """The id hash of the known-device cookie the browser sent, if we signed it for the
        account ``email`` names (a cookie from another account is no device here)."""
        value = request.cookies.get(self.device_cookie)
        raw = self._unsign(value, _device_purpose(email)) if value else None
        return hashlib.sha256(raw).digest() if raw else None

    def know_device(self, response: Response, email: str) -> bytes:
        """A new known-device cookie for the account ``email`` on ``response``; its id hash,
        to store."""
        raw = secrets.token_bytes(32)
        response.set_cookie(
            self.device_cookie,
            self._sign(raw, _device_purpose(email)),
            max_age=int(DEVICE_KNOWN_FOR.total_seconds()),
            path=self.path,
            secure=self.https,
            httponly=True,
            samesite="strict",
        )
        return hashlib.sha256(raw).digest()

    def csrf_token(self, sid: bytes) -> str:
        return self._mac(b"feedback.csrf.v1", sid).hex()[:40]

    async def start(self, conn: Connection, staff: Staff, response: Response) -> None:
        sid = secrets.token_bytes(32)
        await conn.execute(
            """
            INSERT INTO staff_sessions (id_hash, organisation_id, user_id, expires_at)
            VALUES ($1, $2, $3, now() + $4)
            """,
            hashlib.sha256(sid).digest(),
            staff.organisation_id,
            staff.id,
            LIFETIME,
        )
        response.set_cookie(
            self.cookie,
            self._sign(sid),
            max_age=int(LIFETIME.total_seconds()),
            path=self.path,
            secure=self.https,
            httponly=True,
            samesite="strict",
        )

    async def load(self, conn: Connection, request: Request) -> Session | None:
        value = request.cookies.get(self.cookie)
        sid = self._unsign(value) if value else None
        if sid is None:
            return None
        user_id: uuid.UUID | None = await conn.fetchval(
            "SELECT user_id FROM staff_sessions WHERE id_hash = $1 AND expires_at > now()",
            hashlib.sha256(sid).digest(),
        )
        staff = None if user_id is None else await load_staff(conn, user_id)
        if staff is None:
            return None
        return Session(staff, sid, self.csrf_token(sid))

    async def end(self, conn: Connection, session: Session, response: Response) -> None:
        await conn.execute(
            "DELETE FROM staff_sessions WHERE id_hash = $1", hashlib.sha256(session.id).digest()
        )
        self.forget(response)

    def forget(self, response: Response) -> None:
        response.delete_cookie(
            self.cookie, path=self.path, secure=self.https, httponly=True, samesite="strict"
        )


def same_origin(request: Request, public_url: str) -> bool:
    """Whether a state-changing request comes from our own pages: Sec-Fetch-Site when the
    browser sends it, else Origin; a request with neither (not a browser) relies on the
    token alone."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("origin")
    if origin is None:
        return True
    own = {public_url.rstrip("/"), f"{request.url.scheme}://{request.url.netloc}"}
    return origin.rstrip("/") in own


def csrf_ok(session: Session, submitted: object) -> bool:
    return isinstance(submitted, str) and hmac.compare_digest(submitted, session.csrf)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
