from __future__ import annotations

import pytest

from feedback.envelope import (
    BUCKETS,
    Envelope,
    InvalidEnvelope,
    answers_of,
    from_plaintext,
    pad,
    unpad,
)

ENVELOPE = Envelope("rights-based", 1, "es", {"believed": 5, "gender": "woman"}, "¿Qué tal?")


@pytest.mark.parametrize("size", [0, 1, 1022, 1023, 1024, 5000, 16382, 16383])
def test_padding_round_trips_into_the_smallest_bucket(size: int) -> None:
    data = ("é" * (size // 2) + "x" * (size % 2)).encode()  # 0x80-0xBF bytes inside
    padded = pad(data)
    assert len(padded) == min(b for b in BUCKETS if b > len(data))
    assert unpad(padded) == data


def test_too_large_an_envelope_is_refused() -> None:
    with pytest.raises(InvalidEnvelope, match="largest allowed"):
        pad(bytes(16384))


@pytest.mark.parametrize(
    "padded",
    [
        b"{}" + bytes(1022),  # no marker
        b"{}\x80" + bytes(1019) + b"\x01",  # something after the marker
        b"{}\x80\x80" + bytes(1020)[:-1] + b"\x07",
        b"{}\x80" + bytes(1020),  # not a bucket's length
    ],
)
def test_malformed_padding_is_refused(padded: bytes) -> None:
    with pytest.raises(InvalidEnvelope):
        unpad(padded)


def test_an_envelope_reads_back_as_written() -> None:
    envelope = from_plaintext(ENVELOPE.to_plaintext())
    assert envelope == ENVELOPE
    assert answers_of(ENVELOPE.to_plaintext(), "rights-based", 1) == ENVELOPE.answers


@pytest.mark.parametrize(
    "document",
    [
        b"not json",
        b'{"v":1,"survey":"rights-based","survey_version":1,"lang":"en","answers":{"a":NaN}}',
        b'{"v":2,"survey":"rights-based","survey_version":1,"lang":"en","answers":{}}',
        b'{"v":1,"survey":"rights-based","survey_version":"1","lang":"en","answers":{}}',
        b'{"v":1,"survey":"rights-based","survey_version":true,"lang":"en","answers":{}}',
        b'{"v":1,"survey":"rights-based","survey_version":1,"lang":"en","answers":[]}',
        b'{"v":1,"survey":"rights-based","survey_version":1,"answers":{}}',
        b'{"v":1,"survey":"rights-based","survey_version":1,"lang":"en","answers":{},"x":1}',
        b'{"v":1,"survey":"rights-based","survey_version":1,"lang":"en","answers":{},"comment":3}',
        b'{"v":1,"survey":"rights-based","survey_version":1,"lang":"en","answers":{}}\xff',
        b"[1]",
    ],
)
def test_documents_that_are_not_envelopes_are_refused(document: bytes) -> None:
    with pytest.raises(InvalidEnvelope):
        from_plaintext(pad(document))
    with pytest.raises(InvalidEnvelope):
        answers_of(pad(document), "rights-based", 1)


def test_answers_must_be_numbers_or_texts() -> None:
    document = b'{"v":1,"survey":"s1","survey_version":1,"lang":"en","answers":{"a":1.0}}'
    with pytest.raises(InvalidEnvelope, match="numbers or texts"):
        from_plaintext(pad(document))


def test_answers_of_another_survey_or_version_are_refused() -> None:
    with pytest.raises(InvalidEnvelope, match="not of rights-based version 2"):
        answers_of(ENVELOPE.to_plaintext(), "rights-based", 2)
    with pytest.raises(InvalidEnvelope, match="not of other version 1"):
        answers_of(ENVELOPE.to_plaintext(), "other", 1)
