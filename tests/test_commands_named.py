"""Every `feedback ...` command that the README, the docs, a help text or a message names
exists: collected from the text, resolved through the real command line's groups."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from feedback.cli import main

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "feedback").rglob("*.py")),
    *sorted((ROOT / "feedback").rglob("*.html")),
]
# `feedback` then its words, up to the first option, placeholder or the closing backtick.
NAMED = re.compile(r"`feedback((?: [a-z][a-z|-]*)+)")


def named() -> list[tuple[str, tuple[str, ...]]]:
    found = set()
    for path in SOURCES:
        for words in NAMED.findall(path.read_text(encoding="utf-8")):
            found.add((path.relative_to(ROOT).as_posix(), tuple(words.split())))
    return sorted(found)


def resolves(words: tuple[str, ...]) -> bool:
    """Whether the words name a command (alternatives written a|b each must): the words
    after a command that is not a group are its arguments."""
    command: click.Command = main
    for position, word in enumerate(words):
        if not isinstance(command, click.Group):
            return True
        choices = [command.get_command(click.Context(command), w) for w in word.split("|")]
        if any(choice is None for choice in choices):
            return False
        if len(choices) > 1:
            return all(resolves((*words[:position], w)) for w in word.split("|"))
        command = choices[0]  # type: ignore[assignment]
    return True


def test_the_texts_name_commands() -> None:
    assert len(named()) > 30  # the collector finds them
    assert ("README.md", ("organisations", "create")) in named()


@pytest.mark.parametrize(("source", "words"), named())
def test_every_named_command_exists(source: str, words: tuple[str, ...]) -> None:
    assert resolves(words), f"{source} names `feedback {' '.join(words)}`, which does not exist"


def test_a_misspelt_command_is_caught() -> None:
    assert not resolves(("organisation", "create"))
    assert not resolves(("plan", "show|erase"))
