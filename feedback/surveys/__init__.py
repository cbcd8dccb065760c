"""Survey definitions: versioned data files, checked on load, with errors that name the line.

A definition is a TOML file (see ``rights-based.toml``): a slug, a version, a neutral title,
the questions in order and which of them go out by SMS. Question and option texts are gettext
message ids; their translations live in the catalogues under ``feedback/locale``. What is
stored in the database is ``Survey.to_json()``; what the aggregator checks answers against is
``Survey.check_answers``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from feedback.errors import FeedbackError

DEFINITIONS = Path(__file__).resolve().parent
DEFAULT_SURVEY = DEFINITIONS / "rights-based.toml"  # version 2: the twelve default items
FIRST_VERSION = DEFINITIONS / "rights-based-v1.toml"  # version 1, with the wider bank

QuestionType = Literal["likert5", "single_choice", "yes_no", "comment"]
IndexName = Literal["rights", "recovery"]
# The two indices a Likert item can be tagged with (``index = "rights"``), and their names.
INDICES: dict[IndexName, str] = {"rights": "Treated with rights", "recovery": "Recovery"}
TYPES: tuple[QuestionType, ...] = ("likert5", "single_choice", "yes_no", "comment")
PREFER_NOT = "prefer_not"
LIKERT = (1, 2, 3, 4, 5)
YES_NO = ("yes", "no")
MAX_COMMENT = 1000
MAX_SMS_QUESTIONS = 6
IDENTIFIER = re.compile(r"^[a-z0-9][a-z0-9_]{0,39}$")
# Question ids start with a letter: in JavaScript, integer-like object keys would sort first
# and the browser's canonical JSON would differ from the server's.
MOST_VERSIONS = 100_000
QUESTION_ID = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
# Option ids a release already uses: "skipped" (no answer), "prefer_not" (a scale's own "prefer
# not to say") and "all" (the group of everyone). An option named so would vanish into them.
RESERVED_OPTIONS = frozenset(("skipped", PREFER_NOT, "all"))


class SurveyDefinitionError(FeedbackError):
    pass


class InvalidAnswers(FeedbackError):
    pass


@dataclass(frozen=True, slots=True)
class Option:
    id: str
    text: str


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    section: str
    type: QuestionType
    text: str
    options: tuple[Option, ...] = ()
    reverse: bool = False
    demographic: bool = False
    index: IndexName | None = None  # the index this item joins (see feedback.stats.means)

    def allowed(self) -> frozenset[int | str]:
        """Every value an answer to this question may take (skipping is always allowed)."""
        if self.type == "likert5":
            return frozenset((*LIKERT, PREFER_NOT))
        if self.type == "yes_no":
            return frozenset(YES_NO)
        return frozenset(option.id for option in self.options)


@dataclass(frozen=True, slots=True)
class Part:
    """A short part of the survey page: the questions of one section."""

    section: str
    questions: tuple[Question, ...]


@dataclass(frozen=True, slots=True)
class Survey:
    slug: str
    version: int
    title: str
    questions: tuple[Question, ...]
    sms_questions: tuple[str, ...]
    _index: dict[str, Question] = field(init=False, repr=False, compare=False)
    _allowed: dict[str, frozenset[int | str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Looked up for every answer of every envelope the aggregator opens.
        object.__setattr__(self, "_index", {q.id: q for q in self.questions})
        object.__setattr__(self, "_allowed", {q.id: q.allowed() for q in self.questions})

    def question(self, question_id: str) -> Question:
        return self._index[question_id]

    def items_of(self, index: IndexName) -> tuple[Question, ...]:
        """The Likert items tagged with ``index``: a survey's own items join it by their tag."""
        return tuple(q for q in self.questions if q.index == index)

    def answerable(self, *, comments: bool) -> tuple[Question, ...]:
        """The questions a page shows: the comment only where the organisation allows it."""
        return tuple(q for q in self.questions if q.type != "comment" or comments)

    def parts(self, *, comments: bool) -> list[Part]:
        """The questions a page shows, in short parts: one per section, in the survey's order;
        the comment, where shown, ends the last part."""
        found: list[Part] = []
        for question in self.answerable(comments=comments):
            if question.type == "comment" and found:
                found[-1] = Part(found[-1].section, (*found[-1].questions, question))
            elif found and found[-1].section == question.section:
                found[-1] = Part(question.section, (*found[-1].questions, question))
            else:
                found.append(Part(question.section, (question,)))
        return found

    def check_answers(
        self, answers: Mapping[str, object], comment: str | None, *, comments: bool
    ) -> dict[str, int | str]:
        """The answers as stored; raises InvalidAnswers naming the first thing wrong."""
        checked: dict[str, int | str] = {}
        for question_id, value in answers.items():
            allowed = self._allowed.get(question_id)
            if allowed is None:
                raise InvalidAnswers(f"{question_id!r} is not a question of this survey")
            if self._index[question_id].type == "comment":
                raise InvalidAnswers("the comment is given apart from the answers")
            if value not in allowed or type(value) not in (int, str):
                raise InvalidAnswers(f"{value!r} is not an answer to {question_id!r}")
            checked[question_id] = value
        if comment is not None:
            if not comments or not any(q.type == "comment" for q in self.questions):
                raise InvalidAnswers("this survey does not take comments")
            if len(comment) > MAX_COMMENT:
                raise InvalidAnswers(f"the comment is longer than {MAX_COMMENT} characters")
        return checked

    def messages(self) -> Iterator[str]:
        """Every text of the survey that needs translating (gettext message ids)."""
        yield self.title
        for question in self.questions:
            yield question.text
            for option in question.options:
                yield option.text

    def to_json(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "version": self.version,
            "title": self.title,
            "sms_questions": list(self.sms_questions),
            "questions": [
                {
                    "id": q.id,
                    "section": q.section,
                    "type": q.type,
                    "text": q.text,
                    "reverse": q.reverse,
                    "demographic": q.demographic,
                    "options": [{"id": o.id, "text": o.text} for o in q.options],
                    **({"index": q.index} if q.index else {}),
                }
                for q in self.questions
            ],
        }


def load_survey(path: Path = DEFAULT_SURVEY) -> Survey:
    return parse_definition(path.read_text(encoding="utf-8"), str(path))


def from_json(document: Mapping[str, Any]) -> Survey:
    """A definition as stored in the database (already checked when it was stored)."""
    return _build(document, lambda _: 0, "database")


def parse_definition(text: str, source: str) -> Survey:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SurveyDefinitionError(f"{source}: {exc}") from None
    return _build(document, lambda where: line_of(text, *where), source)


def line_of(text: str, key: str, value: object = None) -> int:
    """The line of a definition's ``text`` where ``key`` (set to ``value``, when given) is
    written, or 0: at the start of a line, or inside an inline table ({ id = "x", ... })."""
    written = r"[^\s,}]*" if value is None else rf"[\"']?{re.escape(str(value))}[\"']?"
    pattern = re.compile(rf"(?:^|[{{,])\s*{re.escape(key)}\s*=\s*{written}\s*(?:[,}}]|$)")
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.search(line.split("#", 1)[0]):
            return number
    return 0


def _build(document: Mapping[str, Any], line_of: Any, source: str) -> Survey:
    def fail(message: str, *where: object) -> SurveyDefinitionError:
        line = line_of(where) if where else 0
        return SurveyDefinitionError(
            f"{source}, line {line}: {message}" if line else f"{source}: {message}"
        )

    known = {"slug", "version", "title", "questions", "sms_questions"}
    for key in document:
        if key not in known:
            raise fail(f"unknown key {key!r} (expected one of {sorted(known)})", key)
    slug = document.get("slug")
    if not isinstance(slug, str) or not SLUG.fullmatch(slug):
        raise fail("slug must be lower-case letters, digits and dashes", "slug")
    version = document.get("version")
    if type(version) is not int or not 1 <= version <= MOST_VERSIONS:
        raise fail(f"version must be a whole number from 1 to {MOST_VERSIONS}", "version")
    title = document.get("title")
    if not isinstance(title, str) or not title.strip():
        raise fail("title must be a non-empty text", "title")

    raw_questions = document.get("questions")
    if not isinstance(raw_questions, list) or not raw_questions:
        raise fail("a survey needs at least one [[questions]] entry")
    questions: list[Question] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_questions, start=1):
        questions.append(_question(raw, index, seen, fail))
    if sum(q.type == "comment" for q in questions) > 1:
        raise fail("a survey has at most one comment question")

    sms = document.get("sms_questions", [])
    if not isinstance(sms, list) or not all(isinstance(s, str) for s in sms):
        raise fail("sms_questions must be a list of question ids", "sms_questions")
    if len(sms) > MAX_SMS_QUESTIONS:
        raise fail(f"at most {MAX_SMS_QUESTIONS} questions go out by SMS", "sms_questions")
    for question_id in sms:
        if question_id not in seen:
            raise fail(
                f"sms_questions names {question_id!r}, which is not a question", "sms_questions"
            )
        if next(q for q in questions if q.id == question_id).type == "comment":
            raise fail("the comment cannot go out by SMS", "sms_questions")
    return Survey(slug, version, title, tuple(questions), tuple(sms))


def _question(raw: object, index: int, seen: set[str], fail: Any) -> Question:
    if not isinstance(raw, dict):
        raise fail(f"question {index} is not a table")
    qid = raw.get("id")
    if not isinstance(qid, str) or not QUESTION_ID.fullmatch(qid):
        raise fail(
            f"question {index}: id must be lower-case letters, digits and underscores", "id", qid
        )
    where = ("id", qid)
    if qid in seen:
        raise fail(f"question id {qid!r} is used twice", *where)
    seen.add(qid)
    allowed = {"id", "section", "type", "text", "options", "reverse", "demographic", "index"}
    extra = set(raw) - allowed
    if extra:
        raise fail(f"question {qid!r}: unknown key {sorted(extra)[0]!r}", *where)
    kind = raw.get("type")
    if kind not in TYPES:
        raise fail(
            f"question {qid!r}: type must be one of {', '.join(TYPES)}; got {kind!r}", "type", kind
        )
    text = raw.get("text")
    if not isinstance(text, str) or not text.strip():
        raise fail(f"question {qid!r}: text must be a non-empty text", *where)
    section = raw.get("section", "")
    if not isinstance(section, str):
        raise fail(f"question {qid!r}: section must be a text", *where)
    options: list[Option] = []
    raw_options = raw.get("options", [])
    if kind == "single_choice":
        if not isinstance(raw_options, list) or len(raw_options) < 2:
            raise fail(f"question {qid!r}: a single choice needs two or more options", *where)
        for option in raw_options:
            if (
                not isinstance(option, dict)
                or set(option) != {"id", "text"}
                or not isinstance(option["id"], str)
                or not IDENTIFIER.fullmatch(option["id"])
                or not isinstance(option["text"], str)
            ):
                raise fail(f"question {qid!r}: each option needs an id and a text", *where)
            if option["id"] in RESERVED_OPTIONS:
                raise fail(
                    f"question {qid!r}: option id {option['id']!r} is reserved (the ids "
                    f"{', '.join(sorted(RESERVED_OPTIONS))} mean something else in a release); "
                    "choose another",
                    "id",
                    option["id"],
                )
            if option["id"] in {o.id for o in options}:
                raise fail(
                    f"question {qid!r}: option id {option['id']!r} is used twice",
                    "id",
                    option["id"],
                )
            options.append(Option(option["id"], option["text"]))
    elif raw_options:
        raise fail(f"question {qid!r}: only single_choice questions have options", *where)
    reverse = raw.get("reverse", False)
    demographic = raw.get("demographic", False)
    if not isinstance(reverse, bool) or not isinstance(demographic, bool):
        raise fail(f"question {qid!r}: reverse and demographic are true or false", *where)
    if reverse and kind != "likert5":
        raise fail(f"question {qid!r}: only likert5 questions can be reverse-scored", *where)
    tag = raw.get("index")
    if tag is not None and tag not in INDICES:
        raise fail(
            f"question {qid!r}: index must be one of {', '.join(INDICES)}; got {tag!r}",
            "index",
            tag,
        )
    if tag is not None and kind != "likert5":
        raise fail(f"question {qid!r}: only likert5 questions join an index", *where)
    return Question(qid, section, kind, text, tuple(options), reverse, demographic, tag)


def load_definition(path: Path = DEFAULT_SURVEY) -> dict[str, Any]:
    """The checked definition as the JSON the database stores."""
    return load_survey(path).to_json()
