"""Reading a survey form post, without any I/O: either a box sealed in the browser, or the
plain answers of the no-JavaScript form (which the caller seals at once)."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl

from feedback.envelope import Envelope, is_sealed_envelope_length
from feedback.errors import FeedbackError
from feedback.surveys import InvalidAnswers, Survey

SEALED_FIELDS = {"sealed", "key_id"}
ANSWER_PREFIX = "q."
LIKERT_DIGITS = frozenset("12345")


class BadForm(FeedbackError):
    """The post is not something the survey page sends; nothing is stored."""


@dataclass(frozen=True, slots=True)
class SealedPost:
    ciphertext: bytes
    key_id: uuid.UUID


def parse_urlencoded(body: bytes, *, max_fields: int) -> list[tuple[str, str]]:
    """The fields of a URL-encoded body (what every survey page posts), parsed by the
    standard library: about twice as fast as the multipart parser on the ingest hot path.
    Bytes that are not UTF-8 once decoded, or too many fields, are a BadForm."""
    try:
        return parse_qsl(
            body.decode("latin-1"),
            keep_blank_values=True,
            max_num_fields=max_fields,
            encoding="utf-8",
            errors="strict",
        )
    except (ValueError, UnicodeDecodeError):
        raise BadForm("the form is not URL-encoded UTF-8 text of at most 64 fields") from None


def _unique(fields: Sequence[tuple[str, str]]) -> dict[str, str]:
    values = dict(fields)
    if len(values) != len(fields):
        raise BadForm("a field was sent twice")
    return values


def parse_sealed(fields: Sequence[tuple[str, str]]) -> SealedPost:
    """A post from the survey page's script: a sealed envelope and the id of its key."""
    values = _unique(fields)
    if set(values) != SEALED_FIELDS:
        raise BadForm("a sealed post carries exactly the fields sealed and key_id")
    try:
        ciphertext = base64.b64decode(values["sealed"], validate=True)
    except (binascii.Error, ValueError):
        raise BadForm("the sealed answers are not valid base64") from None
    if not is_sealed_envelope_length(len(ciphertext)):
        raise BadForm("the sealed answers are not a sealed envelope of an allowed length")
    try:
        key_id = uuid.UUID(values["key_id"])
    except ValueError:
        raise BadForm("key_id is not a key id") from None
    return SealedPost(ciphertext, key_id)


def parse_plain(
    fields: Sequence[tuple[str, str]], survey: Survey, *, language: str, comments: bool
) -> Envelope:
    """The no-JavaScript form: answers checked against the survey, as an envelope."""
    values = _unique(fields)
    answers: dict[str, object] = {}
    comment: str | None = None
    for name, value in values.items():
        if name == "comment":
            comment = value.strip().replace("\r\n", "\n") or None
            continue
        if not name.startswith(ANSWER_PREFIX):
            raise BadForm(f"the field {name!r} is not part of this survey")
        try:
            question = survey.question(question_id := name.removeprefix(ANSWER_PREFIX))
        except KeyError:
            raise BadForm(f"the field {name!r} is not part of this survey") from None
        if value == "":
            continue  # an explicit "skip" (pages before 2026-12 had a "Skip" choice)
        # Only the five digits: str.isdigit() also admits "²", which int() would reject with
        # an error whose message (and so the server's log) would contain the typed value.
        likert = question.type == "likert5" and value in LIKERT_DIGITS
        answers[question_id] = int(value) if likert else value
    try:
        checked = survey.check_answers(answers, comment, comments=comments)
    except InvalidAnswers as exc:
        raise BadForm(str(exc)) from None
    return Envelope(survey.slug, survey.version, language, checked, comment)
