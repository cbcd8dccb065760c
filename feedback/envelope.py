"""The envelope: what one submission says, before it is sealed.

One definition for every path: the browser (``collect/js/envelope.js`` mirrors it byte for
byte), the no-JavaScript form and SMS (sealed in server memory), and the aggregator (which
opens it). The document is canonical JSON (sorted keys, no spaces, UTF-8)::

    {"answers":{"believed":5,"gender":"woman"},"comment":"...","lang":"en",
     "survey":"rights-based","survey_version":1,"v":1}

Skipped questions are simply absent; ``comment`` is absent unless given. The JSON is then padded
to a fixed bucket (libsodium's ``sodium_pad``: a 0x80 byte, then zeros), so that a sealed
envelope's length says only which bucket it fell in, and almost every envelope falls in the
first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from feedback.errors import FeedbackError
from feedback.sealing import SEAL_OVERHEAD

FORMAT_VERSION = 1
BUCKETS = (1024, 2048, 4096, 8192, 16384)
MAX_ENVELOPE = BUCKETS[-1]
MAX_SEALED = MAX_ENVELOPE + SEAL_OVERHEAD
SEALED_LENGTHS = frozenset(b + SEAL_OVERHEAD for b in BUCKETS)

Answer = int | str
WRITTEN = "written"  # what answers_of gives the comment question for a comment written
FIELDS = frozenset({"answers", "comment", "lang", "survey", "survey_version", "v"})


class InvalidEnvelope(FeedbackError):
    pass


@dataclass(frozen=True, slots=True)
class Envelope:
    survey: str
    survey_version: int
    language: str
    answers: Mapping[str, Answer] = field(default_factory=dict)
    comment: str | None = None

    def to_json(self) -> bytes:
        document: dict[str, Any] = {
            "answers": dict(self.answers),
            "lang": self.language,
            "survey": self.survey,
            "survey_version": self.survey_version,
            "v": FORMAT_VERSION,
        }
        if self.comment:
            document["comment"] = self.comment
        return json.dumps(
            document, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()

    def to_plaintext(self) -> bytes:
        """The padded bytes that get sealed."""
        return pad(self.to_json())


def pad(data: bytes) -> bytes:
    for bucket in BUCKETS:
        if len(data) + 1 <= bucket:
            return data + b"\x80" + bytes(bucket - len(data) - 1)
    raise InvalidEnvelope(
        f"the envelope is {len(data)} bytes; the largest allowed is {MAX_ENVELOPE - 1}"
    )


def unpad(padded: bytes) -> bytes:
    if len(padded) not in BUCKETS:
        raise InvalidEnvelope(f"a padded envelope is one of {BUCKETS} bytes; got {len(padded)}")
    # The marker is the last 0x80 byte, followed by zeros only (memrchr and memcmp: several
    # times faster than stripping the zeros, for every envelope the aggregator opens).
    end = padded.rfind(0x80)
    if end < 0 or padded[end + 1 :] != _ZEROS[: len(padded) - end - 1]:
        raise InvalidEnvelope("the envelope's padding is malformed")
    return padded[:end]


_ZEROS = bytes(MAX_ENVELOPE)


def from_plaintext(padded: bytes) -> Envelope:
    """Parse an opened envelope; check its shape (the survey checks the answers)."""
    document = _document(padded)
    answers = document["answers"]
    if not all(type(v) in (int, str) for v in answers.values()):
        raise InvalidEnvelope("the envelope's answers are not numbers or texts")
    return Envelope(
        survey=document["survey"],
        survey_version=document["survey_version"],
        language=document["lang"],
        answers=answers,
        comment=document.get("comment"),
    )


def answers_of(
    padded: bytes, survey: str, version: int, comment: str | None = None
) -> dict[str, object]:
    """The answers of an opened envelope of ``survey`` at ``version``, unchecked: what the
    aggregator's tally checks as it counts, once per envelope (see ``Tally.add``). Given the
    id of the survey's ``comment`` question, a comment that is not blank is an answer to it,
    ``WRITTEN``, which feedback.stats.cells counts: its text is dropped here."""
    document = _document(padded)
    if document["survey"] != survey or document["survey_version"] != version:
        raise InvalidEnvelope(f"the envelope is not of {survey} version {version}")
    answers: dict[str, object] = document["answers"]
    if comment is not None:
        if comment in answers:
            raise InvalidEnvelope("the comment is given apart from the answers")
        text = document.get("comment")
        if text and not text.isspace():
            answers[comment] = WRITTEN
    return answers


def _document(padded: bytes) -> dict[str, Any]:
    """The envelope's JSON, its fields checked (their values except the answers' too)."""
    try:
        # orjson: strict RFC 8259 (no NaN, valid UTF-8 only), and 5x faster than json here,
        # where the aggregator parses every envelope it opens.
        document = orjson.loads(unpad(padded))
    except orjson.JSONDecodeError:
        raise InvalidEnvelope("the envelope is not valid JSON") from None
    if not isinstance(document, dict) or document.get("v") != FORMAT_VERSION:
        raise InvalidEnvelope(f"the envelope is not format version {FORMAT_VERSION}")
    comment = document.get("comment")
    if (
        not FIELDS.issuperset(document)
        or not isinstance(document.get("survey"), str)
        or type(document.get("survey_version")) is not int
        or not isinstance(document.get("lang"), str)
        or not isinstance(document.get("answers"), dict)
        or (comment is not None and not isinstance(comment, str))
    ):
        raise InvalidEnvelope("the envelope does not have the fields of format version 1")
    return document


def is_sealed_envelope_length(length: int) -> bool:
    """Whether ``length`` bytes can be a sealed, padded envelope (checked before storing)."""
    return length in SEALED_LENGTHS
