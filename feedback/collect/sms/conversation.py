"""One SMS conversation, message by message: the survivor starts it with a code, may choose a
language, then answers the survey's SMS questions one per message, by number. Each accepted
answer is sealed at once under the conversation's key (see ``feedback.phones``); after the last
one, the answers become one standard envelope sealed to the organisation's key, stored as a
submission in the same transaction that consumes the code and deletes the conversation.

Keywords work at any point: STOP (and the other carrier opt-out words, in every shipped
language) ends and forgets the conversation and sends nothing; HELP sends the help line;
RESTART begins again; NEWS sends the program's latest "you said, we did" note.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from feedback.collect.queries import select_invitation
from feedback.collect.sms import store, texts
from feedback.collect.sms.gateways import Inbound
from feedback.collect.sms.gsm import fit
from feedback.collect.survey_cache import SurveyCache
from feedback.db import Connection
from feedback.envelope import Envelope
from feedback.i18n import LANGUAGE_NAMES, Catalogues
from feedback.phones import fragment_key, open_answer, seal_answer
from feedback.sealing import load_public_key, seal
from feedback.surveys import Question, Survey
from feedback.timeseals import TimeSeal
from feedback.tokens import hash_sms_code, is_sms_code

SKIP = object()


@dataclass(frozen=True, slots=True)
class Context:
    catalogues: Catalogues
    phone_secret: bytes
    surveys: SurveyCache
    idle: dt.timedelta
    sms_code_key: bytes
    idle_seal: TimeSeal  # conversations' idle moments, sealed (see feedback.phones.idle_seal)

    def idle_after(self) -> bytes:
        return store.idle_after(self.idle_seal, self.idle)


def sms_questions(survey: Survey) -> list[Question]:
    return [survey.question(q) for q in survey.sms_questions]


def prompt(survey: Survey, step: int, language: str, gettext: Callable[[str], str]) -> str:
    questions = sms_questions(survey)
    question = questions[step]
    if question.type == "likert5":
        hint = gettext(texts.LIKERT_HINT)
    elif question.type == "yes_no":
        hint = gettext(texts.YES_NO_HINT)
    else:
        options = " ".join(f"{i} {gettext(o.text)}" for i, o in enumerate(question.options, 1))
        hint = f"{options}. {gettext(texts.CHOICE_HINT)}"
    return f"{step + 1}/{len(questions)} {gettext(question.text)} {hint}"


def language_menu(languages: tuple[str, ...]) -> str:
    return " ".join(f"{i} {LANGUAGE_NAMES.get(code, code)}" for i, code in enumerate(languages, 1))


def read_answer(text: str, question: Question) -> int | str | object | None:
    """The answer a reply means: a value, SKIP (0), or None when it cannot be read."""
    digits = texts.normalise(text).rstrip(".")
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 2):
        return None
    number = int(digits)
    if number == 0:
        return SKIP
    if question.type == "likert5":
        return number if 1 <= number <= 5 else None
    if question.type == "yes_no":
        return {1: "yes", 2: "no"}.get(number)
    options = question.options
    return options[number - 1].id if 1 <= number <= len(options) else None


class Reply(NamedTuple):
    """What to answer a message with."""

    text: str | None  # None: send nothing
    touched: bool  # it changed a conversation: remembered for retried webhooks (NEWS, HELP
    # or an unknown code change nothing, and are simply answered again)
    submitted: bool = False  # it stored a submission: remembered in a transaction of its own


async def reply_to(conn: Connection, context: Context, message: Inbound, phone_key: bytes) -> Reply:
    """Handle one message (in the caller's transaction, under a lock on the number)."""
    keyword = texts.keyword(message.body)
    conversation = await store.load(conn, context.idle_seal, phone_key)
    ongoing = conversation is not None
    language = conversation.language if conversation and conversation.language else "en"
    gettext = context.catalogues.gettext(language)
    if keyword == "stop":
        await store.forget(conn, phone_key)
        return Reply(None, ongoing)
    if keyword == "help":
        own, name = await store.help_text(
            conn,
            organisation_id=conversation.organisation_id if conversation else None,
            to_number=message.to,
        )
        return Reply(_fit(own or gettext(texts.HELP), name, gettext), ongoing)
    if keyword == "news":
        notes = await store.latest_note(
            conn,
            program_id=conversation.program_id if conversation else None,
            to_number=message.to,
        )
        found = next((n.get(language) or n.get("en") for n in notes if n), None)
        return Reply(_fit(found or gettext(texts.NO_NEWS), None, gettext), ongoing)
    if conversation is None:
        return await _begin(conn, context, message, phone_key)
    survey = await context.surveys.get(conn, conversation.survey_id)
    if keyword == "restart":
        chosen = conversation.language if len(conversation.languages) == 1 else None
        await _save(conn, context, conversation, language=chosen, step=0, retries=0, fragments=())
        return Reply(_first_prompt(survey, conversation.languages, chosen, context), True)
    if conversation.language is None:
        return Reply(
            await _choose_language(conn, context, conversation, message.body, survey), True
        )
    return await _answer(conn, context, conversation, message, survey, gettext)


async def _begin(conn: Connection, context: Context, message: Inbound, phone_key: bytes) -> Reply:
    gettext = context.catalogues.gettext("en")
    code = texts.normalise(message.body).replace(" ", "").replace("-", "")
    if not is_sms_code(code):
        return Reply(fit(gettext(texts.UNKNOWN_CODE)), False)
    # Unknown, used, expired and revoked codes all get the same reply.
    invitation = await select_invitation(
        conn, token_hash=hash_sms_code(context.sms_code_key, code), medium="sms"
    )
    if invitation is None or invitation.key_id is None:  # (no current key)
        return Reply(fit(gettext(texts.UNKNOWN_CODE)), False)
    languages = _offered(invitation.languages, context)
    chosen = languages[0] if len(languages) == 1 else None
    started = await store.start(
        conn,
        phone_key=phone_key,
        invitation=invitation,
        language=chosen,
        idle_after=context.idle_after(),
    )
    if started is None:  # spent, revoked or expired since it was looked up
        return Reply(fit(gettext(texts.UNKNOWN_CODE)), False)
    survey = await context.surveys.get(conn, invitation.survey_id)
    return Reply(_first_prompt(survey, languages, chosen, context), True)


def _first_prompt(
    survey: Survey, languages: tuple[str, ...], chosen: str | None, context: Context
) -> str:
    if chosen is None:
        return fit(
            context.catalogues.gettext("en")(texts.CHOOSE_LANGUAGE) + " " + language_menu(languages)
        )
    return fit(prompt(survey, 0, chosen, context.catalogues.gettext(chosen)))


async def _choose_language(
    conn: Connection,
    context: Context,
    conversation: store.Conversation,
    body: str,
    survey: Survey,
) -> str:
    languages = _offered(conversation.languages, context)
    digits = texts.normalise(body)
    # ASCII digits only: "፩" is a digit to str.isdigit(), and int() would raise on it.
    if digits.isascii() and digits.isdigit() and 1 <= int(digits) <= len(languages):
        chosen = languages[int(digits) - 1]
        await _save(conn, context, conversation, language=chosen, step=0, retries=0)
        return fit(prompt(survey, 0, chosen, context.catalogues.gettext(chosen)))
    gettext = context.catalogues.gettext("en")
    await _save(conn, context, conversation, language=None, step=0, retries=conversation.retries)
    return fit(
        f"{gettext(texts.UNREADABLE)} {gettext(texts.CHOOSE_LANGUAGE)} {language_menu(languages)}"
    )


async def _answer(
    conn: Connection,
    context: Context,
    conversation: store.Conversation,
    message: Inbound,
    survey: Survey,
    gettext: Callable[[str], str],
) -> Reply:
    language = conversation.language or "en"
    questions = sms_questions(survey)
    question = questions[conversation.step]
    answer = read_answer(message.body, question)
    if answer is None and conversation.retries == 0:
        await _save(
            conn, context, conversation, language=language, step=conversation.step, retries=1
        )
        again = prompt(survey, conversation.step, language, gettext)
        return Reply(fit(f"{gettext(texts.UNREADABLE)} {again}"), True)
    key = fragment_key(context.phone_secret, message.sender, conversation.id)
    fragments = conversation.fragments
    if answer is not None and answer is not SKIP:
        fragments = (*fragments, seal_answer(key, question.id, answer))  # type: ignore[arg-type]
    step = conversation.step + 1
    answers = dict(open_answer(key, f) for f in fragments)
    envelope = Envelope(survey.slug, survey.version, language, answers)
    if step < len(questions):
        partial = None
        if conversation.keep_partial and answers:
            partial = seal(load_public_key(conversation.public_key), envelope.to_plaintext())
        await _save(
            conn,
            context,
            conversation,
            language=language,
            step=step,
            retries=0,
            fragments=fragments,
            partial=partial,
        )
        return Reply(fit(prompt(survey, step, language, gettext)), True)
    ciphertext = seal(load_public_key(conversation.public_key), envelope.to_plaintext())
    stored = await store.submit(conn, conversation, ciphertext=ciphertext)
    return Reply(fit(gettext(texts.THANKS if stored else texts.UNKNOWN_CODE)), True, stored)


async def _save(
    conn: Connection,
    context: Context,
    conversation: store.Conversation,
    *,
    language: str | None,
    step: int,
    retries: int,
    fragments: tuple[bytes, ...] | None = None,
    partial: bytes | None = None,
) -> None:
    await store.save(
        conn,
        conversation,
        language=language,
        step=step,
        retries=retries,
        fragments=conversation.fragments if fragments is None else fragments,
        partial=partial,
        idle_after=context.idle_after(),
    )


def _offered(languages: tuple[str, ...], context: Context) -> tuple[str, ...]:
    """The program's languages that the SMS texts are written in."""
    return tuple(code for code in languages if code in context.catalogues.languages)


def _fit(text: str, name: str | None, gettext: Callable[[str], str]) -> str:
    if name:
        text = f"{gettext(texts.NAMED).format(name=name)} {text}"
    return fit(text)
