"""Encrypted backups: `feedback backup` and `feedback restore`.

A backup is PostgreSQL's own dump (pg_dump's custom format) encrypted as it is written to the
operator's age public key (age-encryption.org/v1, through pyrage, the Python binding of the
maintained Rust implementation rage): the file on disk is never plaintext, and only the holder
of the matching age identity can read it. The dump holds sealed submissions, wrapped keys and
releases as the database does, so even a decrypted backup opens no answer without the
organisation's key passphrase. A restore goes only into an empty database.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import IO, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import pyrage

from feedback.db import Connection
from feedback.errors import FeedbackError
from feedback.migrate import default_directory, discover

ROLES_MIGRATION = 14  # the migration that makes the three roles, where they are missing


class BackupError(FeedbackError):
    pass


def recipient(text: str) -> pyrage.x25519.Recipient:
    try:
        return pyrage.x25519.Recipient.from_str(text.strip())
    except pyrage.RecipientError:
        raise BackupError(
            f"{text!r} is not an age public key: it starts with age1 (make a key pair with "
            "`age-keygen -o backup-key.txt`, and keep that file away from the database host)"
        ) from None


def identity(path: Path) -> pyrage.x25519.Identity:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BackupError(f"cannot read the age identity {path}: {exc}") from None
    for line in lines:
        if line.startswith("AGE-SECRET-KEY-"):
            try:
                return pyrage.x25519.Identity.from_str(line.strip())
            except pyrage.IdentityError:
                break
    raise BackupError(f"{path} holds no age identity (a line AGE-SECRET-KEY-1...)")


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} is not installed: install PostgreSQL's client tools of the server's major "
            "version or newer (Debian: postgresql-client)"
        )
    return found


LIBPQ = {  # a database URL's parts, as the environment variables PostgreSQL's tools read
    "host": "PGHOST",
    "port": "PGPORT",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "dbname": "PGDATABASE",
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
}


def libpq_environment(database_url: str) -> dict[str, str]:
    """The URL as PG* variables: a password in a command's arguments would show in `ps`."""
    parts = urlsplit(database_url)
    given = {
        "host": unquote(parts.hostname or ""),
        "port": str(parts.port or ""),
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "dbname": unquote(parts.path.lstrip("/")),
    }
    for name, value in parse_qsl(parts.query):
        if name not in LIBPQ:
            raise BackupError(f"the database URL's {name!r} is not one a backup can pass on")
        given[name] = value
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    return environment | {LIBPQ[name]: value for name, value in given.items() if value}


def backup(database_url: str, to: Path, to_key: pyrage.x25519.Recipient) -> None:
    """Dump the database into ``to``, encrypted as it is written; refuse to overwrite, and
    keep nothing of a backup that did not finish."""
    dump = subprocess.Popen(  # noqa: S603 (PostgreSQL's own tool, our arguments)
        [_tool("pg_dump"), "--format=custom"],
        env=libpq_environment(database_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    output = cast(IO[bytes], dump.stdout)
    try:
        out = to.open("xb")
    except FileExistsError:
        dump.kill()
        output.close()
        _finish(dump)
        raise BackupError(f"{to} exists: a backup never overwrites a file") from None
    finished = False
    try:
        with out:
            to.chmod(0o600)
            pyrage.encrypt_io(output, out, [to_key])
        finished = True
    except (OSError, pyrage.EncryptError) as exc:
        dump.kill()
        raise BackupError(f"cannot write {to} ({exc}); nothing was kept") from None
    finally:
        output.close()
        failed = _finish(dump)
        if not finished or dump.returncode != 0:
            to.unlink(missing_ok=True)
    if dump.returncode != 0:
        raise BackupError(f"pg_dump failed, nothing kept: {failed}")


async def check_empty(conn: Connection) -> None:
    tables = await conn.fetchval(
        "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', "
        "'information_schema')"
    )
    if tables:
        raise BackupError(
            "the database is not empty: restore only into a new, empty database (createdb), "
            "so that nothing of two installations is mixed"
        )


async def ensure_roles(conn: Connection) -> None:
    """The three roles, where this server lacks them, as the migrations make them: the dump
    grants to them."""
    migration = next(m for m in discover(default_directory()) if m.version == ROLES_MIGRATION)
    block = re.search(r"^DO \$\$.*?^\$\$;", migration.sql, flags=re.DOTALL | re.MULTILINE)
    if block is None:
        raise BackupError(f"{migration.filename} no longer makes the roles")
    await conn.execute(block[0])


def tool_major(name: str) -> int:
    """The major version of PostgreSQL's client tool ``name`` on the PATH."""
    printed = subprocess.run(  # noqa: S603 (PostgreSQL's own tool)
        [_tool(name), "--version"], capture_output=True, text=True, check=False
    ).stdout
    found = re.search(r"\s(\d+)(?:\.\d+)?", printed)
    if found is None:
        raise BackupError(f"cannot tell the version of {name} from {printed.strip()!r}")
    return int(found[1])


def restore(
    database_url: str, source: Path, key: pyrage.x25519.Identity, server_major: int
) -> None:
    """Decrypt ``source`` into pg_restore, which loads it into the (empty) database."""
    if (major := tool_major("pg_restore")) > server_major:
        raise BackupError(
            f"pg_restore is of PostgreSQL {major} and the server of {server_major}: a newer "
            "pg_restore writes settings an older server does not know. Use the client tools "
            f"of the server's version (Debian: postgresql-client-{server_major})"
        )
    load = subprocess.Popen(  # noqa: S603 (PostgreSQL's own tool, our arguments)
        # --no-owner: the restoring login owns what it restores, whatever the old one was
        # called; the grants to the three roles are kept.
        [_tool("pg_restore"), "--exit-on-error", "--single-transaction", "--no-owner", "-d", ""],
        env=libpq_environment(database_url),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    into = cast(IO[bytes], load.stdin)
    try:
        with source.open("rb") as encrypted:
            pyrage.decrypt_io(encrypted, into, [key])
    except FileNotFoundError:
        load.kill()
        raise BackupError(f"no backup at {source}") from None
    except pyrage.DecryptError:
        load.kill()
        raise BackupError(
            f"{source} does not open with this identity: it is not a backup made for it, or it "
            "was damaged. Nothing was restored."
        ) from None
    except BrokenPipeError:
        pass  # pg_restore stopped reading: its own message says why
    except OSError as exc:  # pyrage reports a damaged or cut-off file so, part-way through
        load.kill()
        raise BackupError(f"{source} is damaged ({exc}). Nothing was restored.") from None
    finally:
        with contextlib.suppress(BrokenPipeError):
            into.close()
        failed = _finish(load)
    if load.returncode != 0:
        raise BackupError(f"pg_restore failed and changed nothing: {failed}")


def _finish(process: subprocess.Popen[bytes]) -> str:
    """Wait for ``process``; the last line it wrote on standard error."""
    err = cast(IO[bytes], process.stderr)  # its other pipe is closed by now
    text = err.read().decode(errors="replace").strip()
    err.close()
    process.wait()
    return text.splitlines()[-1] if text else "no message"
