"""Translations from gettext catalogues (``feedback/locale/<lang>/LC_MESSAGES/messages.po``).

English texts are the message ids. Catalogues are read with Babel once, at start-up; a missing
or fuzzy translation falls back to English. ``make messages`` re-extracts the ids from the
templates and survey definitions and updates every catalogue.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
SOURCE_LANGUAGE = "en"
_INLINE_TEXT = re.compile(r'\btext\s*=\s*("(?:[^"\\]|\\.)*")\s*}')
LANGUAGE_NAMES = {"en": "English", "es": "Español"}


def N_(message: str) -> str:
    """Mark a text for translation where it is written; translate it where it is shown."""
    return message


@dataclass(frozen=True, slots=True)
class Catalogues:
    messages: Mapping[str, Mapping[str, str]]

    @property
    def languages(self) -> tuple[str, ...]:
        return (SOURCE_LANGUAGE, *sorted(self.messages))

    def gettext(self, language: str) -> Callable[[str], str]:
        table = self.messages.get(language, {})

        def translate(message: str) -> str:
            return table.get(message) or message

        return translate


def load_catalogues(directory: Path = LOCALE_DIR) -> Catalogues:
    messages: dict[str, dict[str, str]] = {}
    for po in sorted(directory.glob("*/LC_MESSAGES/messages.po")):
        language = po.parent.parent.name
        with po.open("rb") as handle:
            catalog = read_po(handle, locale=language)
        messages[language] = {
            str(m.id): str(m.string)
            for m in catalog
            if m.id and m.string and not m.fuzzy and isinstance(m.id, str)
        }
    return Catalogues(messages)


def negotiate(accept_language: str | None, available: tuple[str, ...]) -> str:
    """The best of ``available`` for an Accept-Language header; the first one otherwise."""
    if accept_language:
        ranked: list[tuple[float, int, str]] = []
        for position, part in enumerate(accept_language.split(",")):
            tag, _, params = part.strip().partition(";")
            quality = 1.0
            if params.strip().startswith("q="):
                try:
                    quality = float(params.strip()[2:])
                except ValueError:
                    continue
            primary = tag.strip().lower().split("-")[0]
            if primary in available and quality > 0:
                ranked.append((-quality, position, primary))
        if ranked:
            return min(ranked)[2]
    return available[0]


def extract_survey(
    fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: Any
) -> Iterator[tuple[int, str, str, list[str]]]:
    """Babel extractor for survey definitions: every ``title`` and ``text`` is a message id."""
    source = fileobj.read().decode("utf-8")
    tomllib.loads(source)  # refuse a broken file rather than extract half of it
    for number, line in enumerate(source.splitlines(), start=1):
        key, _, value = line.partition("=")
        if key.strip() in ("title", "text") and value.strip().startswith('"'):
            yield number, "", tomllib.loads(f"v = {value.strip()}")["v"], []
        for match in _INLINE_TEXT.finditer(line):
            yield number, "", tomllib.loads(f"v = {match.group(1)}")["v"], []
