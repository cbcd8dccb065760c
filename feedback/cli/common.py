"""Pieces every command shares: running async commands, choosing an organisation, passphrases."""

from __future__ import annotations

import asyncio
import functools
import sys
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
import uvloop

from feedback.config import Settings
from feedback.db import Connection
from feedback.errors import FeedbackError
from feedback.logs import configure_logging
from feedback.secretfiles import read_passphrase_file

F = TypeVar("F", bound=Callable[..., Any])


def run(command: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async command with the settings; expected errors become one line and exit 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            settings = Settings.from_env()
            configure_logging(settings.log_level)
            # uvloop: about three times the requests per second of the stdlib loop here.
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(command(settings, *args, **kwargs))
        except FeedbackError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper


def organisation_option(command: F) -> F:
    return click.option(
        "--organisation",
        "-o",
        metavar="SLUG",
        help="The organisation (may be left out when there is only one).",
    )(command)


def key_file_option(command: F) -> F:
    return click.option(
        "--key-file",
        type=click.Path(path_type=Path),
        help="An exported key file, for offline use.",
    )(command)


def passphrase_file_option(command: F) -> F:
    return click.option(
        "--passphrase-file",
        type=click.Path(path_type=Path),
        help="Read the passphrase from a file (its first line; mode 0600) or, given -, from "
        "standard input, instead of asking.",
    )(command)


@dataclass(frozen=True, slots=True)
class Organisation:
    id: uuid.UUID
    slug: str
    name: str


async def pick_organisation(conn: Connection, slug: str | None) -> Organisation:
    rows = await conn.fetch("SELECT id, slug, name FROM organisations ORDER BY slug")
    if slug is not None:
        for row in rows:
            if row["slug"] == slug:
                return Organisation(**dict(row))
        raise FeedbackError(
            f"no organisation {slug!r}; known: {', '.join(r['slug'] for r in rows) or 'none'}"
        )
    if len(rows) == 1:
        return Organisation(**dict(rows[0]))
    if not rows:
        raise FeedbackError(
            "there is no organisation yet: create one with `feedback organisations create`"
        )
    raise FeedbackError(
        "there are several organisations: say which with --organisation "
        f"({', '.join(r['slug'] for r in rows)})"
    )


def read_passphrase(path: Path | None, *, confirm: bool) -> str:
    """From a file (first line), standard input (``-``: first line), or typed at a prompt;
    typed twice when ``confirm``, because a mistyped passphrase would lose every answer sealed
    to the key for good (a file or a pipe is not mistyped)."""
    if path == Path("-"):
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise FeedbackError("no passphrase on standard input (its first line is read)")
        return line
    if path is not None:
        return read_passphrase_file(path)
    passphrase: str = click.prompt(
        "Passphrase", hide_input=True, confirmation_prompt=confirm, err=True
    )
    return passphrase


async def find_program(conn: Connection, organisation_id: uuid.UUID, slug: str) -> uuid.UUID:
    """The id of the organisation's program ``slug``; an error naming it if there is none."""
    found: uuid.UUID | None = await conn.fetchval(
        "SELECT id FROM programs WHERE organisation_id = $1 AND slug = $2", organisation_id, slug
    )
    if found is None:
        raise FeedbackError(f"no program {slug!r} in this organisation")
    return found
