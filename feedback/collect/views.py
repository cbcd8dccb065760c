"""Handlers of the survivor app. Plain answers exist only in this process's memory, between
reading the form and sealing it; nothing here logs or stores them."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from feedback.collect import queries
from feedback.collect.batching import SealedBatcher
from feedback.collect.forms import BadForm, parse_plain, parse_sealed, parse_urlencoded
from feedback.collect.pages import Pages
from feedback.collect.survey_cache import SurveyCache
from feedback.db import Connection, Pool
from feedback.i18n import N_, Catalogues, negotiate
from feedback.limits import RateLimiter
from feedback.sealing import load_public_key, seal
from feedback.surveys import LIKERT, PREFER_NOT, Question, Survey
from feedback.tokens import hash_receipt, hash_token, is_token, make_receipt, normalise_receipt
from feedback.web import DATABASE_GONE, RETRY_AFTER_S, client_address, connection

MAX_FIELDS = 64  # a survey has at most a few dozen questions

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
    submit_limiter: RateLimiter  # posts per link and client: bounds open-link stuffing
    batcher: SealedBatcher
    withdraw_limiter: RateLimiter  # withdrawal attempts per client (loosely)
    receipt_limiter: RateLimiter  # withdrawal attempts per receipt code
    surveys: SurveyCache


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
    """The radio buttons of a question, in the page's language. None is chosen at first: a
    question left unanswered is skipped (a page looks unanswered until it is answered)."""

    def for_question(question: Question) -> list[tuple[int | str, str]]:
        options: list[tuple[int | str, str]]
        if question.type == "likert5":
            options = [(v, _(label)) for v, label in zip(LIKERT, LIKERT_LABELS, strict=True)]
            options.append((PREFER_NOT, _("Prefer not to say")))
        elif question.type == "yes_no":
            options = [("yes", _("Yes")), ("no", _("No"))]
        else:
            options = [(option.id, _(option.text)) for option in question.options]
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


async def _open_invitation(request: Request, conn: Connection) -> OpenInvitation | Response:
    """The invitation named in the URL if it can take answers, else the page saying why."""
    state = _state(request)
    token = request.path_params["token"]
    invitation = survey = None
    if is_token(token):
        invitation = await queries.select_invitation(conn, token_hash=hash_token(token))
        if invitation is not None:
            survey = await state.surveys.get(conn, invitation.survey_id)
    available = state.catalogues.languages
    offered = tuple(c for c in (invitation.languages if invitation else ()) if c in available)
    offered = offered or available
    language = _language(request, offered)
    if language is None:
        return _unknown_language(request, offered)
    if invitation is None:
        return _not_found(request, language)
    if invitation.public_key is None or invitation.key_id is None or survey is None:
        return _message(
            request,
            language,
            503,
            N_("This survey is not open yet"),
            N_("Please try again later."),
        )
    return OpenInvitation(
        invitation,
        survey,
        language,
        offered,
        invitation.public_key,
        invitation.key_id,
    )


def _not_found(request: Request, language: str) -> Response:
    """The one page for every token that cannot take answers: unknown, used, expired or
    revoked look the same, so that whoever holds the phone learns nothing from it."""
    return _message(
        request,
        language,
        404,
        N_("This link does not work"),
        N_("Check that the whole link was copied, or ask for a new one."),
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
    async with connection(state.pool) as conn:
        found = await _open_invitation(request, conn)
    if isinstance(found, Response):
        return found
    return state.pages.render(
        "survey.html",
        language=found.language,
        path=request.url.path,
        languages=found.languages,
        survey=found.survey,
        parts=found.survey.parts(comments=found.invitation.comments_enabled),
        choices=choices(state.catalogues.gettext(found.language)),
        notes=found.invitation.notes_in(found.language),
        public_key=base64.b64encode(found.public_key).decode(),
        key_id=str(found.key_id),
    )


# A submission's page, and whether it was stored through an open link (so counted per client).
Submitted = tuple[Response, bool]


async def submit_survey(request: Request) -> Response:
    state = _state(request)
    try:
        fields = await _fields(request)
    except BadForm:
        return _unreadable(request, _language(request, state.catalogues.languages) or "en")
    # Posts to an open (poster) link are limited per link and client. The post is counted
    # before it is stored, so that a burst of parallel posts cannot all pass, and given back
    # unless it was stored through an open link: junk tokens and personal links fill nothing.
    hit = (request.path_params["token"], client_address(request))
    if not state.submit_limiter.allow(*hit):
        language = _language(request, state.catalogues.languages) or "en"
        return _message(
            request,
            language,
            429,
            N_("Please wait a little"),
            N_("Many answers were sent from here just now. Please try again in a few minutes."),
        )
    counted = False
    try:
        if any(name == "sealed" for name, _ in fields):
            response, counted = await _submit_sealed(request, fields)
        else:
            response, counted = await _submit_plain(request, fields)
        return response
    except DATABASE_GONE:
        return _not_sent_yet(request, fields)
    finally:
        if not counted:
            state.submit_limiter.give_back(*hit)


def _not_sent_yet(request: Request, fields: list[tuple[str, str]]) -> Response:
    """The database is away: nothing was stored. The answers go back to the browser in a form
    (sealed as they came, or as typed without JavaScript) that sends them again, by itself
    where scripts run."""
    state = _state(request)
    language = _language(request, state.catalogues.languages) or "en"
    response = state.pages.render(
        "retry.html",
        language=language,
        status=503,
        action=f"{request.url.path}?lang={language}",
        fields=fields,
    )
    response.headers["retry-after"] = str(RETRY_AFTER_S)
    return response


async def _fields(request: Request) -> list[tuple[str, str]]:
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        return parse_urlencoded(await request.body(), max_fields=MAX_FIELDS)
    try:
        form = await request.form(max_files=0, max_fields=MAX_FIELDS)
    except HTTPException as exc:  # Starlette's answer to a malformed or file-bearing form
        if exc.status_code != 400:
            raise
        raise BadForm(str(exc.detail)) from None
    return [(name, value) for name, value in form.multi_items() if isinstance(value, str)]


async def _submit_sealed(request: Request, fields: list[tuple[str, str]]) -> Submitted:
    """A box sealed in the browser: checked and stored in one round trip (the hot path)."""
    state = _state(request)
    language = _language(request, state.catalogues.languages)
    if language is None:
        return _unknown_language(request, state.catalogues.languages), False
    token = request.path_params["token"]
    try:
        posted = parse_sealed(fields)
    except BadForm:
        return _unreadable(request, language), False
    if not is_token(token):
        return _not_found(request, language), False
    receipt = make_receipt()
    outcome = await state.batcher.store(
        queries.SealedItem(
            token_hash=hash_token(token),
            key_id=posted.key_id,
            ciphertext=posted.ciphertext,
            receipt_hash=hash_receipt(state.receipt_key, receipt),
        )
    )
    if outcome is None:
        return _not_found(request, language), False
    if outcome.stored:
        thanks = state.pages.render_thanks(
            language=language, notes=outcome.notes_in(language), receipt=receipt
        )
        return thanks, outcome.open_link
    if not outcome.key_known:  # not the organisation's current key: the page loads again
        return _unreadable(request, language), False
    return _not_found(request, language), False  # spent by a concurrent post


async def _submit_plain(request: Request, fields: list[tuple[str, str]]) -> Submitted:
    """The no-JavaScript form: read against the survey, sealed here, then stored."""
    state = _state(request)
    async with connection(state.pool) as conn:  # one connection for the lookup and the insert
        found = await _open_invitation(request, conn)
        if isinstance(found, Response):
            return found, False
        try:
            envelope = parse_plain(
                fields,
                found.survey,
                language=found.language,
                comments=found.invitation.comments_enabled,
            )
        except BadForm:
            return _unreadable(request, found.language), False
        ciphertext = seal(load_public_key(found.public_key), envelope.to_plaintext())
        del envelope  # the plain answers go no further than this line
        receipt = make_receipt()
        stored = await queries.insert_submission(
            conn,
            invitation=found.invitation,
            channel="web_nojs",
            ciphertext=ciphertext,
            receipt_hash=hash_receipt(state.receipt_key, receipt),
        )
    if not stored:
        return _not_found(request, found.language), False
    thanks = state.pages.render_thanks(
        language=found.language, notes=found.invitation.notes_in(found.language), receipt=receipt
    )
    return thanks, found.invitation.kind == "open"


async def unavailable(request: Request, exc: Exception) -> Response:
    """The database is out of reach or every connection is busy: a neutral page that says so
    and nothing was saved, and when to try again."""
    response = _neutral(
        request,
        503,
        N_("Please wait a little"),
        N_("Nothing was saved. Please try again in a minute."),
    )
    response.headers["retry-after"] = str(RETRY_AFTER_S)
    return response


async def server_error(request: Request, exc: Exception) -> Response:
    """Even when something breaks, a survivor sees a neutral page with the quick exit."""
    return _neutral(
        request,
        500,
        N_("Something went wrong"),
        N_("Nothing was saved. Please try again in a few minutes."),
    )


async def slow_body(request: Request, exc: Exception) -> Response:
    """The answers did not arrive in time (a very slow connection)."""
    return _neutral(
        request,
        408,
        N_("Please wait a little"),
        N_("Nothing was saved. Please try again in a minute."),
    )


async def too_large(request: Request, exc: Exception) -> Response:
    """Only a very long comment makes a survey post this large."""
    return _neutral(
        request,
        413,
        N_("Your answers were too long to send"),
        N_("Nothing was saved. Please go back, shorten your comment and send the form again."),
    )


def _neutral(request: Request, status: int, heading: str, paragraph: str) -> Response:
    """A message page with the quick exit, in the page's language; plain text if the app's
    state is not there (it failed to start)."""
    state: SurvivorState | None = getattr(request.state, "survivor", None)
    if state is None:
        return Response(heading + ".", status_code=status, media_type="text/plain")
    language = _language(request, state.catalogues.languages) or "en"
    return _message(request, language, status, heading, paragraph)


def _unreadable(request: Request, language: str) -> Response:
    return _message(
        request,
        language,
        400,
        N_("Your answers could not be read"),
        N_("Nothing was saved. Please go back and send the form again."),
    )


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
    form = await request.form(max_files=0, max_fields=4)
    code = normalise_receipt(str(form.get("code", "")))
    # Limited, loosely, per client (30 tries in 10 minutes), then per well-formed code, so that
    # no one can hammer one receipt; a client past its limit spends no code's attempts. Behind
    # a proxy missing from FEEDBACK_TRUSTED_PROXIES every survivor is one client, and a flood
    # of junk codes does stop everyone's withdrawals: name the proxy.
    if not (
        state.withdraw_limiter.allow(client_address(request))
        and (code is None or state.receipt_limiter.allow(code))
    ):
        return _message(
            request,
            language,
            429,
            N_("Please wait a little"),
            N_("Too many codes were tried from here just now. Please try again in a few minutes."),
        )
    outcome: queries.WithdrawOutcome = "unknown"
    if code is not None:
        try:
            async with connection(state.pool) as conn:
                outcome = await queries.withdraw_submission(
                    conn, receipt_hash=hash_receipt(state.receipt_key, code)
                )
        except asyncpg.LockNotAvailableError:  # the answers are being moved (mixed) right now
            return _message(
                request,
                language,
                503,
                N_("Please wait a little"),
                N_("Nothing was changed. Please try again in a minute."),
            )
    return state.pages.render(
        "withdraw.html",
        language=language,
        outcome=outcome,
        status=200 if outcome != "unknown" else 404,
        path=request.url.path,
        languages=state.catalogues.languages,
    )
