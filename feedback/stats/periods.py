"""Declared release periods: a month (2026-07), a quarter (2026-Q3), a half-year (2026-H2) or a
year (2026)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Literal

from feedback.errors import FeedbackError

Granularity = Literal["month", "quarter", "half", "year"]
GRANULARITIES: tuple[Granularity, ...] = ("month", "quarter", "half", "year")
PER_YEAR: dict[Granularity, int] = {"month": 12, "quarter": 4, "half": 2, "year": 1}
NAMES: dict[Granularity, str] = {
    "month": "month",
    "quarter": "quarter",
    "half": "half-year",
    "year": "year",
}
EVERY: dict[Granularity, str] = {
    "month": "monthly",
    "quarter": "quarterly",
    "half": "half-yearly",
    "year": "yearly",
}


FIRST_YEAR, LAST_YEAR = 2000, 2200  # as the ledger's budget years


class BadPeriod(FeedbackError):
    pass


@dataclass(frozen=True, slots=True)
class Period:
    granularity: Granularity
    start: dt.date
    end: dt.date  # exclusive

    @classmethod
    def parse(cls, text: str) -> Period:
        text = text.strip()
        year_given = re.match(r"\d{4}", text)
        if year_given and not FIRST_YEAR <= int(year_given[0]) <= LAST_YEAR:
            raise BadPeriod(f"{text!r}: the year must be {FIRST_YEAR} to {LAST_YEAR}")
        if match := re.fullmatch(r"(\d{4})-(\d{2})", text):
            year, month = int(match[1]), int(match[2])
            if not 1 <= month <= 12:
                raise BadPeriod(f"{text!r}: the month must be 01 to 12")
            end = dt.date(year + (month == 12), month % 12 + 1, 1)
            return cls("month", dt.date(year, month, 1), end)
        if match := re.fullmatch(r"(\d{4})-Q([1-4])", text, flags=re.IGNORECASE):
            year, quarter = int(match[1]), int(match[2])
            start = dt.date(year, 3 * quarter - 2, 1)
            end = dt.date(year + (quarter == 4), (3 * quarter) % 12 + 1, 1)
            return cls("quarter", start, end)
        if match := re.fullmatch(r"(\d{4})-H([12])", text, flags=re.IGNORECASE):
            year, half = int(match[1]), int(match[2])
            start = dt.date(year, 6 * half - 5, 1)
            end = dt.date(year + (half == 2), (6 * half) % 12 + 1, 1)
            return cls("half", start, end)
        if re.fullmatch(r"\d{4}", text):
            year = int(text)
            return cls("year", dt.date(year, 1, 1), dt.date(year + 1, 1, 1))
        raise BadPeriod(f"{text!r} is not a period: write 2026-07, 2026-Q3, 2026-H2 or 2026")

    @classmethod
    def of(cls, granularity: str, start: dt.date) -> Period:
        """The period of ``granularity`` that starts on ``start`` (as stored with a release)."""
        if granularity == "month":
            return cls.parse(f"{start:%Y-%m}")
        if granularity == "quarter":
            return cls.parse(f"{start.year}-Q{(start.month - 1) // 3 + 1}")
        if granularity == "half":
            return cls.parse(f"{start.year}-H{(start.month - 1) // 6 + 1}")
        if granularity == "year":
            return cls.parse(str(start.year))
        raise BadPeriod(f"{granularity!r} is not month, quarter, half or year")

    @property
    def budget_year(self) -> int:
        return self.start.year

    def weeks(self) -> tuple[dt.date, dt.date]:
        """The Mondays whose weeks count in this period: [first, last). A week belongs to the
        period its Monday falls in, so that every week counts in exactly one period."""
        first = self.start + dt.timedelta(days=(7 - self.start.weekday()) % 7)
        last = self.end + dt.timedelta(days=(7 - self.end.weekday()) % 7)
        return first, last

    def __str__(self) -> str:
        if self.granularity == "month":
            return f"{self.start:%Y-%m}"
        if self.granularity == "quarter":
            return f"{self.start.year}-Q{(self.start.month - 1) // 3 + 1}"
        if self.granularity == "half":
            return f"{self.start.year}-H{(self.start.month - 1) // 6 + 1}"
        return str(self.start.year)
