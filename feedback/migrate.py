"""Forward-only schema migrations from numbered plain-SQL files.

Files are named ``NNNN_description.sql`` and applied in number order, each in its own
transaction, under a PostgreSQL advisory lock so that two processes starting at once apply each
file exactly once. ``schema_migrations`` records every applied file with the SHA-256 of its
text; a file edited after it was applied, or an applied file this code does not have, stops the
run before anything changes.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from feedback.db import Connection
from feedback.errors import BadMigrationName, EditedMigration, UnknownMigration

log = logging.getLogger(__name__)

LOCK_KEY = 0x66656564  # "feed": the advisory lock every migration runner takes
NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")


def default_directory() -> Path:
    """migrations/ beside the package in a checkout, or inside it in a wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "migrations", here / "_migrations"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("no migrations directory beside or inside the feedback package")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def filename(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"


def discover(directory: Path) -> list[Migration]:
    """Every migration file in ``directory``, in order; refuses stray or duplicate names."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix != ".sql":
            continue
        match = NAME.match(path.name)
        if match is None:
            raise BadMigrationName(
                f"migration {path.name} is not named NNNN_description.sql "
                "(four digits, lower-case letters, digits and underscores): rename it"
            )
        version = int(match["version"])
        if version in found:
            raise BadMigrationName(
                f"migrations {found[version].filename} and {path.name} share number {version}: "
                "renumber the newer one"
            )
        found[version] = Migration(version, match["name"], path.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


async def pending(conn: Connection, directory: Path | None = None) -> list[Migration]:
    """The migrations a run would apply now (checks applied files, changes nothing)."""
    migrations = discover(directory or default_directory())
    has_table = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    applied = await _applied(conn) if has_table else {}
    _check_applied(migrations, applied)
    return [m for m in migrations if m.version not in applied]


async def apply_migrations(conn: Connection, directory: Path | None = None) -> list[Migration]:
    """Apply every pending migration in order; return the ones applied by this call."""
    migrations = discover(directory or default_directory())
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    integer PRIMARY KEY,
                name       text NOT NULL,
                checksum   text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        applied = await _applied(conn)
        _check_applied(migrations, applied)
        done = []
        for migration in migrations:
            if migration.version in applied:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            log.info("applied migration %s", migration.filename)
            done.append(migration)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)


async def _applied(conn: Connection) -> dict[int, tuple[str, str]]:
    rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
    return {row["version"]: (row["name"], row["checksum"]) for row in rows}


def _check_applied(migrations: list[Migration], applied: dict[int, tuple[str, str]]) -> None:
    known = {m.version: m for m in migrations}
    for version, (name, checksum) in sorted(applied.items()):
        migration = known.get(version)
        if migration is None:
            raise UnknownMigration(
                f"the database has migration {version:04d}_{name}.sql, which this code does not "
                "have: run a release of feedback that includes it"
            )
        if migration.checksum != checksum:
            raise EditedMigration(
                f"migration {migration.filename} was edited after it was applied to this "
                "database: restore the original file and put the change in a new migration"
            )
