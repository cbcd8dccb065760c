from __future__ import annotations

import logging
import time

from feedback.logs import ACCESS_LOGGER, FORMAT, SecondFormatter

MOMENT = 1_795_960_987.654  # 2026-11-29 14:03:07.654 UTC


def record(name: str) -> logging.LogRecord:
    made = logging.LogRecord(name, logging.INFO, __file__, 1, "POST %s 200", ("/s/{token}",), None)
    made.created, made.msecs = MOMENT, 654.0
    return made


def test_request_lines_carry_the_hour_only() -> None:
    formatter = SecondFormatter(FORMAT)
    formatter.converter = time.gmtime
    access = formatter.format(record(ACCESS_LOGGER))
    other = formatter.format(record("feedback.jobs"))
    assert access.startswith("2026-11-29 14:00 INFO feedback.access POST /s/{token} 200")
    assert ":03" not in access.split(" INFO")[0]
    assert other.startswith("2026-11-29 14:03:07,654 INFO feedback.jobs")
