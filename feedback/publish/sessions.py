"""Staff sessions: a random id and its expiry in a signed, HttpOnly, SameSite=Strict cookie
(Secure outside local development), scoped to the staff app's path. Only the id's SHA-256 is
stored, with the user and the day after its login (to delete it by, whatever the hour of the
login: a session lasts 8 hours): the exact expiry is in the signed cookie, not in a row whose
transaction id it would date (../shared/PRIVACY.md, Metadata). Logging out or disabling the
user deletes the row, which ends the session. A second cookie of the same kind marks a
browser that logged in before (a known device: see ``accounts.claim``).

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

    def _sign(self, sid: bytes, purpose: bytes) -> str:
        mac = self._mac(purpose, sid)[:16]
        return _b64(sid) + "." + _b64(mac)

    def _unsign(self, value: str, purpose: bytes) -> bytes | None:
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

    def _session_value(self, sid: bytes, expires: int) -> str:
        return f"{_b64(sid)}.{expires}.{_b64(self._mac_of(sid, expires))}"

    def _open_session(self, value: str) -> bytes | None:
        """The session id of a cookie we signed, unless its expiry has passed."""
        try:
            raw_sid, raw_expires, raw_mac = value.split(".", 2)
            sid, expires, mac = _unb64(raw_sid), int(raw_expires), _unb64(raw_mac)
        except ValueError:
            return None
        if len(sid) != 32 or not hmac.compare_digest(mac, self._mac_of(sid, expires)):
            return None
        return sid if expires > dt.datetime.now(dt.UTC).timestamp() else None

    def _mac_of(self, sid: bytes, expires: int) -> bytes:
        return self._mac(SESSION, sid + b"\0" + str(expires).encode())[:16]

    async def start(self, conn: Connection, staff: Staff, response: Response) -> None:
        sid = secrets.token_bytes(32)
        expires = dt.datetime.now(dt.UTC) + LIFETIME
        await conn.execute(
            """
            INSERT INTO staff_sessions (id_hash, organisation_id, user_id, expires_on)
            VALUES ($1, $2, $3, utc_today() + 1)
            """,
            hashlib.sha256(sid).digest(),
            staff.organisation_id,
            staff.id,
        )
        response.set_cookie(
            self.cookie,
            self._session_value(sid, int(expires.timestamp())),
            max_age=int(LIFETIME.total_seconds()),
            path=self.path,
            secure=self.https,
            httponly=True,
            samesite="strict",
        )

    async def load(self, conn: Connection, request: Request) -> Session | None:
        value = request.cookies.get(self.cookie)
        sid = self._open_session(value) if value else None
        if sid is None:
            return None
        user_id: uuid.UUID | None = await conn.fetchval(
            "SELECT user_id FROM staff_sessions WHERE id_hash = $1 AND expires_on >= utc_today()",
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
