"""Handlers of the survivor app. Plain answers exist only in this process's memory, between
reading the form and sealing it; nothing here logs or stores them."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from feedback.collect import queries
from feedback.collect.forms import BadForm, SealedPost, parse_submission
from feedback.collect.limits import RateLimiter
from feedback.collect.pages import Pages
from feedback.db import Pool
from feedback.i18n import Catalogues, negotiate
from feedback.sealing import load_public_key, seal
from feedback.surveys import LIKERT, PREFER_NOT, Question, Survey, from_json
from feedback.tokens import hash_receipt, hash_token, is_token, make_receipt, normalise_receipt
from feedback.weeks import current_week

LIKERT_LABELS = (
    "Strongly disagree",
    "Disagree",
    "Neither agree nor disagree",
    "Agree",
    "Strongly agree",
)


@dataclass(frozen=True, slots=True)
class SurvivorState:
    """What every survivor handler needs, built once when the app starts."""

    pool: Pool
    pages: Pages
    catalogues: Catalogues
    receipt_key: bytes
    open_link_limiter: RateLimiter
    withdraw_limiter: RateLimiter


def _state(request: Request) -> SurvivorState:
    state: SurvivorState = request.state.survivor
    return state


def _language(request: Request, offered: tuple[str, ...]) -> str | None:
    """From ?lang= when given (None if it is not offered), else from Accept-Language."""
    asked = request.query_params.get("lang")
    if asked is not None:
        return asked if asked in offered else None
    return negotiate(request.headers.get("accept-language"), offered)


def _message(
    request: Request, language: str, status: int, heading: str, *paragraphs: str
) -> Response:
    state = _state(request)
    _ = state.catalogues.gettext(language)
    return state.pages.render(
        "message.html",
        language=language,
        status=status,
        heading=_(heading),
        paragraphs=[_(p) for p in paragraphs],
        links=[],
    )


def choices(_: Callable[[str], str]) -> Callable[[Question], list[tuple[int | str, str]]]:
    """The radio buttons of a question, in the page's language; the last one skips it."""

    def for_question(question: Question) -> list[tuple[int | str, str]]:
        options: list[tuple[int | str, str]]
        if question.type == "likert5":
            options = [(v, _(label)) for v, label in zip(LIKERT, LIKERT_LABELS, strict=True)]
            options.append((PREFER_NOT, _("Prefer not to say")))
        elif question.type == "yes_no":
            options = [("yes", _("Yes")), ("no", _("No"))]
        else:
            options = [(option.id, _(option.text)) for option in question.options]
        options.append(("", _("Skip this question")))
        return options

    return for_question


async def _invitation(request: Request) -> tuple[queries.Invitation | None, Survey | None]:
    token = request.path_params["token"]
    if not is_token(token):
        return None, None
    async with _state(request).pool.acquire() as conn:
        invitation = await queries.select_invitation(conn, token_hash=hash_token(token))
    if invitation is None:
        return None, None
    return invitation, from_json(invitation.definition)


def _unusable(
    request: Request, invitation: queries.Invitation | None, language: str
) -> Response | None:
    """The page for a link that cannot take answers, or None when it can."""
    if invitation is None:
        return _message(
            request,
            language,
            404,
            "This link does not work",
            "Check that the whole link was copied, or ask for a new one.",
        )
    if invitation.expired:
        return _message(
            request,
            language,
            410,
            "This link has expired",
            "Ask the program for a new link if you would still like to answer.",
        )
    if invitation.used:
        return _already(request, language)
    if invitation.public_key is None:
        return _message(
            request,
            language,
            503,
            "This survey is not open yet",
            "Please try again later.",
        )
    return None


def _already(request: Request, language: str) -> Response:
    return _message(
        request,
        language,
        409,
        "Your answers were already received",
        "This link can be used once, and it has been. Thank you: there is nothing more to do.",
    )


def _unknown_language(request: Request, offered: tuple[str, ...]) -> Response:
    state = _state(request)
    fallback = offered[0]
    _ = state.catalogues.gettext(fallback)
    return state.pages.render(
        "message.html",
        language=fallback,
        status=400,
        heading=_("This language is not available"),
        paragraphs=[_("Choose one of these languages:")],
        links=[(f"{request.url.path}?lang={code}", code) for code in offered],
    )


async def show_survey(request: Request) -> Response:
    state = _state(request)
    invitation, survey = await _invitation(request)
    offered = _offered(state, invitation)
    language = _language(request, offered)
    if language is None:
        return _unknown_language(request, offered)
    refusal = _unusable(request, invitation, language)
    if refusal is not None or invitation is None or survey is None:
        return refusal or _message(request, language, 404, "This link does not work")
    async with state.pool.acquire() as conn:
        notes = await queries.select_latest_notes(
            conn, program_id=invitation.program_id, language=language
        )
    assert invitation.public_key is not None
    return state.pages.render(
        "survey.html",
        language=language,
        path=request.url.path,
        languages=offered,
        survey=survey,
        questions=survey.answerable(comments=invitation.comments_enabled),
        choices=choices(state.catalogues.gettext(language)),
        notes=notes,
        public_key=base64.b64encode(invitation.public_key).decode(),
        key_id=str(invitation.key_id),
    )


def _offered(state: SurvivorState, invitation: queries.Invitation | None) -> tuple[str, ...]:
    available = state.catalogues.languages
    if invitation is None:
        return available
    return tuple(code for code in invitation.languages if code in available) or available


async def submit_survey(request: Request) -> Response:
    state = _state(request)
    invitation, survey = await _invitation(request)
    offered = _offered(state, invitation)
    language = _language(request, offered)
    if language is None:
        return _unknown_language(request, offered)
    refusal = _unusable(request, invitation, language)
    if refusal is not None or invitation is None or survey is None:
        return refusal or _message(request, language, 404, "This link does not work")
    if invitation.kind == "open" and not state.open_link_limiter.allow(
        str(invitation.id), request.client.host if request.client else ""
    ):
        return _message(
            request,
            language,
            429,
            "Please wait a little",
            "Many answers were sent from here just now. Please try again in a few minutes.",
        )
    form = await request.form(max_files=0, max_fields=64)
    fields = [(name, value) for name, value in form.multi_items() if isinstance(value, str)]
    try:
        posted = parse_submission(
            fields, survey, language=language, comments=invitation.comments_enabled
        )
    except BadForm as error:
        return _message(
            request,
            language,
            400,
            "Your answers could not be read",
            "Nothing was saved. Please go back and send the form again.",
            str(error),
        )
    channel: queries.Channel
    if isinstance(posted, SealedPost):
        key_id, ciphertext, channel = posted.key_id, posted.ciphertext, "web"
    else:
        assert invitation.public_key is not None and invitation.key_id is not None
        key_id, channel = invitation.key_id, "web_nojs"
        ciphertext = seal(load_public_key(invitation.public_key), posted.to_plaintext())
        del posted  # the plain answers go no further than this line
    receipt = make_receipt()
    week = current_week()
    async with state.pool.acquire() as conn, conn.transaction():
        if key_id != invitation.key_id and not await queries.is_organisation_key(
            conn, organisation_id=invitation.organisation_id, key_id=key_id
        ):
            return _message(
                request,
                language,
                400,
                "Your answers could not be read",
                "Nothing was saved. Please reload the page and send the form again.",
            )
        if invitation.kind == "single" and not await queries.consume_invitation(
            conn, invitation_id=invitation.id, week=week
        ):
            return _already(request, language)
        await queries.insert_submission(
            conn,
            invitation=invitation,
            key_id=key_id,
            channel=channel,
            week=week,
            ciphertext=ciphertext,
            receipt_hash=hash_receipt(state.receipt_key, receipt),
        )
        notes = await queries.select_latest_notes(
            conn, program_id=invitation.program_id, language=language
        )
    return state.pages.render("thanks.html", language=language, notes=notes, receipt=receipt)


async def show_withdraw(request: Request) -> Response:
    state = _state(request)
    language = _language(request, state.catalogues.languages)
    if language is None:
        return _unknown_language(request, state.catalogues.languages)
    return state.pages.render(
        "withdraw.html",
        language=language,
        outcome=None,
        path=request.url.path,
        languages=state.catalogues.languages,
    )


async def withdraw(request: Request) -> Response:
    state = _state(request)
    language = _language(request, state.catalogues.languages)
    if language is None:
        return _unknown_language(request, state.catalogues.languages)
    if not state.withdraw_limiter.allow(request.client.host if request.client else ""):
        return _message(
            request,
            language,
            429,
            "Please wait a little",
            "Too many codes were tried from here just now. Please try again in a few minutes.",
        )
    form = await request.form(max_files=0, max_fields=4)
    code = normalise_receipt(str(form.get("code", "")))
    outcome: queries.WithdrawOutcome = "unknown"
    if code is not None:
        async with state.pool.acquire() as conn:
            outcome = await queries.withdraw_submission(
                conn, receipt_hash=hash_receipt(state.receipt_key, code)
            )
    return state.pages.render(
        "withdraw.html",
        language=language,
        outcome=outcome,
        status=200 if outcome != "unknown" else 404,
        path=request.url.path,
        languages=state.catalogues.languages,
    )
