"""SMS encodings: a message that fits GSM-7 takes 160 characters per segment; one other
character makes the whole message UCS-2, 70 characters. Replies are kept to one segment: Latin
letters with accents that GSM-7 lacks (á, í, ó, ú, ...) are written without them, as people
often do by SMS, so that a Spanish reply is not cut to 70 characters."""

from __future__ import annotations

import unicodedata

GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENDED = frozenset("^{}\\[~]|€\f")  # each takes two places
GSM_SEGMENT, UCS2_SEGMENT = 160, 70


def is_gsm7(text: str) -> bool:
    return all(c in GSM_BASIC or c in GSM_EXTENDED for c in text)


def gsm7_length(text: str) -> int:
    return sum(2 if c in GSM_EXTENDED else 1 for c in text)


def segments(text: str) -> int:
    """How many SMS segments ``text`` takes (153 or 67 characters per part when split)."""
    if is_gsm7(text):
        length = gsm7_length(text)
        return 1 if length <= GSM_SEGMENT else -(-length // 153)
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= UCS2_SEGMENT else -(-units // 67)


def fit(text: str) -> str:
    """``text`` with the accents GSM-7 lacks taken off the letters that carry them, when
    that makes it GSM-7; otherwise ``text`` as it is (another script stays UCS-2)."""
    if is_gsm7(text):
        return text
    plain = "".join(c if c in GSM_BASIC or c in GSM_EXTENDED else _bare(c) for c in text)
    return plain if is_gsm7(plain) else text


def _bare(character: str) -> str:
    base = unicodedata.normalize("NFD", character)[0]
    return base if base in GSM_BASIC else character
