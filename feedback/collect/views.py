"""Handlers of the survivor app. Plain answers exist only in this process's memory, between
reading the form and sealing it; nothing here logs or stores them."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from feedback.collect import queries
from feedback.collect.forms import BadForm, SealedPost, parse_submission
from feedback.collect.limits import RateLimiter
from feedback.collect.pages import Pages
from feedback.db import Pool
from feedback.i18n import N_, Catalogues, negotiate
from feedback.sealing import load_public_key, seal
from feedback.surveys import LIKERT, PREFER_NOT, Question, Survey, from_json
from feedback.tokens import hash_receipt, hash_token, is_token, make_receipt, normalise_receipt
from feedback.weeks import current_week

LIKERT_LABELS = (
    N_("Strongly disagree"),
    N_("Disagree"),
    N_("Neither agree nor disagree"),
    N_("Agree"),
    N_("Strongly agree"),
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


@dataclass(frozen=True, slots=True)
class OpenInvitation:
    """An invitation that can take answers now, with what the page needs."""

    invitation: queries.Invitation
    survey: Survey
    language: str
    languages: tuple[str, ...]
    public_key: bytes
    key_id: uuid.UUID


async def _open_invitation(request: Request) -> OpenInvitation | Response:
    """The invitation named in the URL if it can take answers, else the page saying why."""
    state = _state(request)
    token = request.path_params["token"]
    invitation = None
    if is_token(token):
        async with state.pool.acquire() as conn:
            invitation = await queries.select_invitation(conn, token_hash=hash_token(token))
    available = state.catalogues.languages
    offered = tuple(c for c in (invitation.languages if invitation else ()) if c in available)
    offered = offered or available
    language = _language(request, offered)
    if language is None:
        return _unknown_language(request, offered)
    if invitation is None:
        return _message(
            request,
            language,
            404,
            N_("This link does not work"),
            N_("Check that the whole link was copied, or ask for a new one."),
        )
    if invitation.expired:
        return _message(
            request,
            language,
            410,
            N_("This link has expired"),
            N_("Ask the program for a new link if you would still like to answer."),
        )
    if invitation.used:
        return _already(request, language)
    if invitation.public_key is None or invitation.key_id is None:
        return _message(
            request,
            language,
            503,
            N_("This survey is not open yet"),
            N_("Please try again later."),
        )
    return OpenInvitation(
        invitation,
        from_json(invitation.definition),
        language,
        offered,
        invitation.public_key,
        invitation.key_id,
    )


def _already(request: Request, language: str) -> Response:
    return _message(
        request,
        language,
        409,
        N_("Your answers were already received"),
        N_("This link can be used once, and it has been. Thank you: there is nothing more to do."),
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
    found = await _open_invitation(request)
    if isinstance(found, Response):
        return found
    async with state.pool.acquire() as conn:
        notes = await queries.select_latest_notes(
            conn, program_id=found.invitation.program_id, language=found.language
        )
    return state.pages.render(
        "survey.html",
        language=found.language,
        path=request.url.path,
        languages=found.languages,
        survey=found.survey,
        questions=found.survey.answerable(comments=found.invitation.comments_enabled),
        choices=choices(state.catalogues.gettext(found.language)),
        notes=notes,
        public_key=base64.b64encode(found.public_key).decode(),
        key_id=str(found.key_id),
    )


async def submit_survey(request: Request) -> Response:
    state = _state(request)
    found = await _open_invitation(request)
    if isinstance(found, Response):
        return found
    invitation, language = found.invitation, found.language
    if invitation.kind == "open" and not state.open_link_limiter.allow(
        str(invitation.id), request.client.host if request.client else ""
    ):
        return _message(
            request,
            language,
            429,
            N_("Please wait a little"),
            N_("Many answers were sent from here just now. Please try again in a few minutes."),
        )
    form = await request.form(max_files=0, max_fields=64)
    fields = [(name, value) for name, value in form.multi_items() if isinstance(value, str)]
    try:
        posted = parse_submission(
            fields, found.survey, language=language, comments=invitation.comments_enabled
        )
    except BadForm:
        return _message(
            request,
            language,
            400,
            N_("Your answers could not be read"),
            N_("Nothing was saved. Please go back and send the form again."),
        )
    channel: queries.Channel
    if isinstance(posted, SealedPost):
        key_id, ciphertext, channel = posted.key_id, posted.ciphertext, "web"
    else:
        key_id, channel = found.key_id, "web_nojs"
        ciphertext = seal(load_public_key(found.public_key), posted.to_plaintext())
        del posted  # the plain answers go no further than this line
    receipt = make_receipt()
    week = current_week()
    async with state.pool.acquire() as conn, conn.transaction():
        if key_id != found.key_id and not await queries.is_organisation_key(
            conn, organisation_id=invitation.organisation_id, key_id=key_id
        ):
            return _message(
                request,
                language,
                400,
                N_("Your answers could not be read"),
                N_("Nothing was saved. Please reload the page and send the form again."),
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
            N_("Please wait a little"),
            N_("Too many codes were tried from here just now. Please try again in a few minutes."),
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
