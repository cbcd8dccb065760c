from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import asyncpg
import click
import pytest
from click.testing import CliRunner

from feedback.cli import main
from feedback.migrate import default_directory, discover
from tests.cli import run_feedback

MIGRATIONS = len(discover(default_directory()))


def feedback(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_feedback(*args, env=env)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return errors[0]


def test_help_everywhere() -> None:
    runner = CliRunner()
    top = runner.invoke(main, ["--help"])
    assert top.exit_code == 0
    assert isinstance(main, click.Group)
    for name, command in main.commands.items():
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0, name
        first_words = " ".join((command.help or "").split()[:4])
        assert first_words in " ".join(result.output.split())


async def test_migrate_twice_changes_nothing_the_second_time(empty_database_url: str) -> None:
    env = {"FEEDBACK_DATABASE_URL": empty_database_url}
    first = feedback("migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert f"applied {MIGRATIONS} migration(s): 0001_organisations.sql" in first.stdout
    conn = await asyncpg.connect(empty_database_url)
    try:
        before = await conn.fetch("SELECT * FROM schema_migrations ORDER BY version")
        second = feedback("migrate", env=env)
        after = await conn.fetch("SELECT * FROM schema_migrations ORDER BY version")
    finally:
        await conn.close()
    assert second.returncode == 0
    assert "nothing to apply" in second.stdout
    assert before == after


async def test_migrate_refuses_an_edited_migration(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        # What an edited file looks like from the database: a checksum that no longer matches.
        await conn.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = 3")
    finally:
        await conn.close()
    result = feedback("migrate", env={"FEEDBACK_DATABASE_URL": database_url})
    line = one_line_error(result)
    assert "0003_surveys.sql was edited after it was applied" in line
    assert "new migration" in line


def test_dry_run_lists_pending_sql_and_changes_nothing(empty_database_url: str) -> None:
    env = {"FEEDBACK_DATABASE_URL": empty_database_url}
    result = feedback("migrate", "--dry-run", env=env)
    assert result.returncode == 0
    assert "-- 0001_organisations.sql" in result.stdout
    assert f"{MIGRATIONS} migration(s) pending" in result.stdout
    assert f"{MIGRATIONS} migration(s) pending" in feedback("migrate", "--dry-run", env=env).stdout


def test_malformed_database_url() -> None:
    line = one_line_error(feedback("migrate", env={"FEEDBACK_DATABASE_URL": "mysql://x@y/z"}))
    assert "FEEDBACK_DATABASE_URL must start with postgresql://" in line


def test_unreachable_database() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    url = f"postgresql://postgres:secretpw@127.0.0.1:{free_port}/feedback"
    line = one_line_error(feedback("migrate", env={"FEEDBACK_DATABASE_URL": url}))
    assert f"cannot reach the database at postgresql://postgres:***@127.0.0.1:{free_port}" in line
    assert "secretpw" not in line


def test_unwritable_data_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    env = {"FEEDBACK_DATA_DIR": str(blocker / "data"), "FEEDBACK_DATABASE_URL": ""}
    line = one_line_error(feedback("migrate", env=env))
    assert "cannot use data directory" in line
    assert "FEEDBACK_DATA_DIR" in line


def test_port_in_use(database_url: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {"FEEDBACK_DATABASE_URL": database_url, "FEEDBACK_PORT": str(port)}
        for command in ("serve", "demo"):
            line = one_line_error(feedback(command, env=env))
            assert f"port {port} on 127.0.0.1 is already in use" in line
            assert "FEEDBACK_PORT" in line


def test_serve_refuses_an_unmigrated_database(empty_database_url: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"FEEDBACK_DATABASE_URL": empty_database_url, "FEEDBACK_PORT": str(port)}
    for command in ("serve", "worker"):
        line = one_line_error(feedback(command, env=env))
        assert "run `feedback migrate` first" in line


@pytest.mark.parametrize("value", ["0", "-1"])
def test_bad_port_setting(value: str) -> None:
    line = one_line_error(feedback("serve", env={"FEEDBACK_PORT": value}))
    assert "FEEDBACK_PORT must be between 1 and 65535" in line
