"""The data directory and the service secrets that may be generated into it.

A secret given in the settings wins. Otherwise it is generated once, 32 random bytes written
hex-encoded to ``DATA_DIR/secrets/<name>`` with mode 0600, and read back on every later start,
so that sessions and phone-number HMACs survive restarts.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from feedback.config import Settings
from feedback.db import Connection
from feedback.errors import ConfigError, DataDirError


@dataclass(frozen=True, slots=True)
class ServiceSecrets:
    session: bytes
    phone_hmac: bytes
    sms_code_key: bytes
    sms_auth_token: bytes  # used as text by the gateways (Twilio's is 32 hex characters)


def prepare_data_dir(path: Path) -> Path:
    """Create ``path`` (mode 0700) if needed and prove it is writable."""
    hint = "set FEEDBACK_DATA_DIR to a directory this user can write"
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise DataDirError(f"cannot use data directory {path} ({reason}): {hint}") from None
    return path


def resolve_secrets(settings: Settings) -> ServiceSecrets:
    def pick(given: bytes | None, name: str) -> bytes:
        if given is not None:
            return given
        return load_or_create_secret(prepare_data_dir(settings.data_dir), name)

    return ServiceSecrets(
        session=pick(settings.session_secret, "session_secret"),
        phone_hmac=pick(settings.phone_hmac_key, "phone_hmac_key"),
        sms_code_key=pick(settings.sms_code_key, "sms_code_key"),
        sms_auth_token=settings.sms_auth_token
        or load_or_create_secret(prepare_data_dir(settings.data_dir), "sms_auth_token")
        .hex()
        .encode(),
    )


async def check_shared(conn: Connection, secrets: Mapping[str, bytes]) -> None:
    """Refuse secrets (setting name -> value) that differ from those this database was first
    used with: every host must share them. Only a keyed fingerprint is stored."""
    for name, value in secrets.items():
        fingerprint = hmac.new(value, b"feedback.fingerprint.v1", hashlib.sha256).digest()[:16]
        await conn.execute(
            "INSERT INTO secret_fingerprints (name, fingerprint) VALUES ($1, $2) "
            "ON CONFLICT (name) DO NOTHING",
            name,
            fingerprint,
        )
        stored = await conn.fetchval(
            "SELECT fingerprint FROM secret_fingerprints WHERE name = $1", name
        )
        if not hmac.compare_digest(stored, fingerprint):
            raise ConfigError(
                f"FEEDBACK_{name} is not the one this database was set up with: every host "
                f"must use the same (set FEEDBACK_{name} to the first host's, or copy its "
                f"DATA_DIR/secrets/{name.lower()})"
            )


def load_or_create_secret(data_dir: Path, name: str) -> bytes:
    """Return the secret stored under ``name``, creating it (0600) on first use."""
    folder = data_dir / "secrets"
    path = folder / name
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise DataDirError(
                f"secret file {path} is readable by others (mode {mode:o}): run chmod 600 {path}"
            )
        value = path.read_text().strip()
    except OSError as exc:
        raise DataDirError(
            f"cannot read or create secret {path} ({exc.strerror}): "
            "check FEEDBACK_DATA_DIR or set the secret in the environment"
        ) from None
    if len(value) < 64:
        raise DataDirError(f"secret file {path} is truncated: delete it to generate a new one")
    return bytes.fromhex(value)


def read_passphrase_file(path: Path) -> str:
    """A passphrase kept in a file: its first line. Refused when others can read the file."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise DataDirError(
                f"passphrase file {path} is readable by others (mode {mode:o}): "
                f"run chmod 600 {path}"
            )
        return path.read_text().splitlines()[0]
    except (OSError, IndexError, UnicodeDecodeError):
        raise DataDirError(f"cannot read a passphrase from {path}") from None
