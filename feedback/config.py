"""Settings, read once from ``FEEDBACK_*`` environment variables.

``SETTINGS`` is the single list of variables: ``Settings.from_env`` reads it and the README
table documents it (a test keeps the two in step). Nothing here touches the disk or the
network; ``secretfiles`` resolves the secrets that may live in the data directory.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from feedback.errors import ConfigError

PREFIX = "FEEDBACK_"
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Variable:
    name: str
    default: str
    description: str


SETTINGS: tuple[Variable, ...] = (
    Variable(
        "DATABASE_URL",
        "",
        "PostgreSQL URL (`postgresql://user:password@host:5432/dbname`). "
        "Empty: start an embedded PostgreSQL in the data directory and stop it on exit.",
    ),
    Variable(
        "DATA_DIR",
        "~/.local/share/feedback",
        "Directory for the embedded database, generated secrets and demo.json.",
    ),
    Variable("HOST", "127.0.0.1", "Address the web server listens on."),
    Variable("PORT", "8000", "Port the web server listens on."),
    Variable(
        "PUBLIC_URL",
        "",
        "Base URL people and SMS gateways use to reach the server (behind a proxy). "
        "Empty: `http://HOST:PORT`.",
    ),
    Variable(
        "STAFF_URL",
        "",
        "Base URL staff use to reach the staff app, for the links commands print (behind a "
        "proxy it may be a site of its own). Empty: PUBLIC_URL followed by /staff.",
    ),
    Variable(
        "TRUSTED_PROXIES",
        "",
        "Addresses or networks (comma-separated, such as `127.0.0.1,10.0.0.0/8`) of the reverse "
        "proxies in front of the server: from them, the client's address for rate limits is "
        "read from X-Forwarded-For (it is never logged or stored). Empty: the peer's address.",
    ),
    Variable(
        "QUICK_EXIT_URL",
        "https://www.bbc.com/weather",
        "Where the quick-exit control on every survivor page goes: a neutral, everyday site.",
    ),
    Variable("STATEMENT_TIMEOUT_MS", "5000", "PostgreSQL statement timeout for every connection."),
    Variable("POOL_SIZE", "10", "Largest number of database connections per app, in each process."),
    Variable(
        "SESSION_SECRET",
        "",
        "Key that signs staff session cookies (at least 32 characters). "
        "Empty: generated once into `DATA_DIR/secrets/session_secret` (mode 0600).",
    ),
    Variable(
        "PHONE_HMAC_KEY",
        "",
        "Key for the HMAC that replaces phone numbers (at least 32 characters); keep it out of "
        "the database and its backups. Empty: generated once into "
        "`DATA_DIR/secrets/phone_hmac_key` (mode 0600).",
    ),
    Variable(
        "SMS_CODE_KEY",
        "",
        "Key for the HMAC that SMS start codes are stored under (at least 32 characters); the "
        "staff app (which makes codes) and the survivor app (which reads them) must share it, "
        "and it stays out of the database. Empty: generated once into "
        "`DATA_DIR/secrets/sms_code_key` (mode 0600).",
    ),
    Variable(
        "SMS_AUTH_TOKEN",
        "",
        "The SMS gateway's auth token, which signs its webhooks (Twilio: the account's auth "
        "token). Empty: generated once into `DATA_DIR/secrets/sms_auth_token` (for the demo and "
        "`feedback sms-sim`).",
    ),
    Variable(
        "VONAGE_API_KEY",
        "",
        "Vonage SMS API key; with the secret and signature secret, turns on /sms/vonage. Empty: "
        "off.",
    ),
    Variable("VONAGE_API_SECRET", "", "Vonage SMS API secret, for sending replies."),
    Variable(
        "VONAGE_SIGNATURE_SECRET",
        "",
        "Vonage signature secret (SHA-256 HMAC method), which signs its inbound webhooks.",
    ),
    Variable("VONAGE_API_URL", "https://rest.nexmo.com", "Where Vonage's SMS API answers."),
    Variable(
        "SMS_IDLE_MINUTES",
        "30",
        "An SMS conversation idle this long (rounded up to five minutes, so that no row holds "
        "the minute a survivor wrote) is ended and its sealed answers discarded (or, where a "
        "program keeps partial answers, submitted). At least 10: a conversation's messages "
        "must be remembered for as long as a gateway's message stays fresh.",
    ),
    Variable(
        "KEY_PASSPHRASE_DIR",
        "",
        "Directory of files named after organisations (their slug), each holding that "
        "organisation's key passphrase (mode 0600): the worker then makes the planned releases "
        "as their periods end. Empty: no scheduled releases; run `feedback aggregate`.",
    ),
    Variable(
        "MIX_HOURS",
        "1",
        "How often each worker mixes stored submissions, in hours (1 to 20). Until it is mixed "
        "into its week, a new row's transaction id and position order it among the others; no "
        "row says when it came more finely than the day. A mix of 10,000 rows takes about half "
        "a second.",
    ),
    Variable(
        "INSECURE_TEST_KDF",
        "false",
        "Tests only: wrap new private keys with argon2id at libsodium's INTERACTIVE cost "
        "instead of SENSITIVE. Refused with an https:// public URL.",
    ),
    Variable(
        "ACCEPT_VISIBLE_STATISTICS",
        "false",
        "Start the staff app although its database role can still read PostgreSQL's "
        "statistics, sizes and transaction-id clocks, which time each answer (only a "
        "superuser can withhold them; a managed PostgreSQL has none): one warning names "
        "what is left open. Otherwise `feedback serve` refuses, with the SQL a superuser runs.",
    ),
    Variable("LOG_LEVEL", "INFO", "Python logging level."),
    Variable("DEBUG", "false", "Starlette debug pages; never in production."),
)

_DEFAULTS = {v.name: v.default for v in SETTINGS}


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str | None
    data_dir: Path
    host: str
    port: int
    public_url: str
    staff_url: str
    trusted_proxies: tuple[IPNetwork, ...]
    quick_exit_url: str
    statement_timeout_ms: int
    pool_size: int
    session_secret: bytes | None
    phone_hmac_key: bytes | None
    sms_code_key: bytes | None
    sms_auth_token: bytes | None
    sms_idle_minutes: int
    vonage: tuple[str, str, bytes, str] | None  # api key, api secret, signature secret, URL
    key_passphrase_dir: Path | None
    mix_every: dt.timedelta
    insecure_test_kdf: bool
    accept_visible_statistics: bool
    log_level: str
    debug: bool

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def get(name: str) -> str:
            return env.get(PREFIX + name, _DEFAULTS[name]).strip()

        host = get("HOST")
        port = _integer(get("PORT"), "PORT", low=1, high=65535)
        database_url = get("DATABASE_URL") or None
        if database_url is not None:
            check_database_url(database_url)
        public_url = (get("PUBLIC_URL") or f"http://{host}:{port}").rstrip("/")
        insecure_test_kdf = _boolean(get("INSECURE_TEST_KDF"), "INSECURE_TEST_KDF")
        if insecure_test_kdf and public_url.startswith("https:"):
            raise ConfigError(
                f"{PREFIX}INSECURE_TEST_KDF is for tests and is refused with an https:// "
                f"{PREFIX}PUBLIC_URL: unset it"
            )
        return cls(
            database_url=database_url,
            data_dir=Path(get("DATA_DIR")).expanduser(),
            host=host,
            port=port,
            public_url=public_url,
            staff_url=(get("STAFF_URL") or f"{public_url}/staff").rstrip("/"),
            trusted_proxies=_networks(get("TRUSTED_PROXIES"), "TRUSTED_PROXIES"),
            quick_exit_url=_https_url(get("QUICK_EXIT_URL"), "QUICK_EXIT_URL"),
            statement_timeout_ms=_integer(
                get("STATEMENT_TIMEOUT_MS"), "STATEMENT_TIMEOUT_MS", low=100, high=3_600_000
            ),
            pool_size=_integer(get("POOL_SIZE"), "POOL_SIZE", low=2, high=1000),
            session_secret=_secret(get("SESSION_SECRET"), "SESSION_SECRET"),
            phone_hmac_key=_secret(get("PHONE_HMAC_KEY"), "PHONE_HMAC_KEY"),
            sms_code_key=_secret(get("SMS_CODE_KEY"), "SMS_CODE_KEY"),
            sms_auth_token=get("SMS_AUTH_TOKEN").encode() or None,
            vonage=_vonage(get),
            sms_idle_minutes=_integer(
                get("SMS_IDLE_MINUTES"), "SMS_IDLE_MINUTES", low=10, high=24 * 60
            ),
            key_passphrase_dir=Path(raw).expanduser()
            if (raw := get("KEY_PASSPHRASE_DIR"))
            else None,
            mix_every=dt.timedelta(hours=_integer(get("MIX_HOURS"), "MIX_HOURS", low=1, high=20)),
            insecure_test_kdf=insecure_test_kdf,
            accept_visible_statistics=_boolean(
                get("ACCEPT_VISIBLE_STATISTICS"), "ACCEPT_VISIBLE_STATISTICS"
            ),
            log_level=_log_level(get("LOG_LEVEL")),
            debug=_boolean(get("DEBUG"), "DEBUG"),
        )


def check_database_url(url: str) -> None:
    """Raise ConfigError unless ``url`` is a PostgreSQL URL asyncpg can use."""
    parts = urlsplit(url)
    example = "postgresql://user:password@host:5432/dbname"
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(
            f"{PREFIX}DATABASE_URL must start with postgresql:// (like {example}); "
            f"it starts with {parts.scheme + '://' if parts.scheme else 'no scheme'}"
        )
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(
            f"{PREFIX}DATABASE_URL has a port that is not a number; write it like {example}"
        ) from None
    if port == 0:
        raise ConfigError(f"{PREFIX}DATABASE_URL has port 0; write it like {example}")
    if not parts.hostname and "host=" not in parts.query:
        raise ConfigError(f"{PREFIX}DATABASE_URL names no host; write it like {example}")


def _integer(raw: str, name: str, *, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{PREFIX}{name} must be a whole number; got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{PREFIX}{name} must be between {low} and {high}; got {value}")
    return value


def _networks(raw: str, name: str) -> tuple[IPNetwork, ...]:
    try:
        return tuple(ipaddress.ip_network(part.strip()) for part in raw.split(",") if part.strip())
    except ValueError as exc:
        raise ConfigError(
            f"{PREFIX}{name} must be addresses or networks, such as 127.0.0.1,10.0.0.0/8 ({exc})"
        ) from None


def _https_url(raw: str, name: str) -> str:
    if not raw.startswith("https://") or len(raw) < 12:
        raise ConfigError(f"{PREFIX}{name} must be an https:// address; got {raw!r}")
    return raw


def _boolean(raw: str, name: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{PREFIX}{name} must be true or false; got {raw!r}")


def _secret(raw: str, name: str) -> bytes | None:
    if not raw:
        return None
    if len(raw) < 32:
        raise ConfigError(
            f"{PREFIX}{name} must be at least 32 characters; leave it empty to have one generated"
        )
    return raw.encode()


def _vonage(get: Callable[[str], str]) -> tuple[str, str, bytes, str] | None:
    names = ("VONAGE_API_KEY", "VONAGE_API_SECRET", "VONAGE_SIGNATURE_SECRET")
    values = [get(name) for name in names]
    if not any(values):
        return None
    if not all(values):
        missing = ", ".join(PREFIX + n for n, v in zip(names, values, strict=True) if not v)
        raise ConfigError(f"the Vonage gateway needs {missing} as well")
    return (
        values[0],
        values[1],
        values[2].encode(),
        _https_url(get("VONAGE_API_URL"), "VONAGE_API_URL"),
    )


def _log_level(raw: str) -> str:
    level = raw.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(
            f"{PREFIX}LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL; got {raw!r}"
        )
    return level
