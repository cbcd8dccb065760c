"""The gateways' inbound webhook: /sms/{gateway}. A message is handled in one transaction,
under a lock on its number, and remembered under the gateway's message id, so that a retried
or replayed webhook changes nothing, counts against no limit and texts the phone nothing (a
Twilio retry of the last message gets its reply again, in the response): on the
conversation's own row while it lasts, and in this process's memory for a few minutes after
it ends (no row is left that could date it). A wrong signature stores nothing."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from feedback.collect.sms import store
from feedback.collect.sms.conversation import Context, reply_to
from feedback.collect.sms.gateways import (
    FRESH_FOR,
    BadMessage,
    BadSignature,
    Gateway,
    Inbound,
    Stale,
)
from feedback.db import Connection, Pool
from feedback.limits import RateLimiter
from feedback.phones import message_key, phone_key
from feedback.web import connection


class RecentReplies:
    """Messages that no conversation row remembers (those of conversations that have ended,
    and HELP, NEWS or unknown codes), with their replies, for a retry or a replay of the
    same webhook: in memory only, for ``keep`` seconds (as long as a Vonage message stays
    fresh), at most ``size`` of them."""

    def __init__(self, *, keep: float = FRESH_FOR.total_seconds(), size: int = 50_000) -> None:
        self.keep = keep
        self.size = size
        self._replies: OrderedDict[bytes, tuple[float, str | None]] = OrderedDict()

    def get(self, message_key: bytes) -> tuple[bool, str | None]:
        self._forget_old()
        found = self._replies.get(message_key)
        return (False, None) if found is None else (True, found[1])

    def put(self, message_key: bytes, reply: str | None) -> None:
        self._forget_old()
        self._replies[message_key] = (time.monotonic(), reply)
        while len(self._replies) > self.size:
            self._replies.popitem(last=False)

    def _forget_old(self) -> None:
        cutoff = time.monotonic() - self.keep
        while self._replies and next(iter(self._replies.values()))[0] < cutoff:
            self._replies.popitem(last=False)


@dataclass(frozen=True, slots=True)
class SmsState:
    pool: Pool
    context: Context
    gateways: dict[str, Gateway]
    public_url: str
    limiter: RateLimiter  # messages per number (kept under a keyed hash, in memory only)
    recent: RecentReplies  # messages no conversation row remembers (see _handle)
    handling: set[bytes]  # messages being handled now: a copy meanwhile is a replay


def called_url(request: Request, public_url: str) -> str:
    """The URL the gateway called, as it signed it: our public URL, not the address a proxy
    forwarded to."""
    query = request.url.query
    return public_url.rstrip("/") + request.url.path + (f"?{query}" if query else "")


async def inbound(request: Request) -> Response:
    state: SmsState = request.state.sms
    gateway = state.gateways.get(request.path_params["gateway"])
    if gateway is None:
        raise HTTPException(404)
    try:
        message = await gateway.receive(request, called_url(request, state.public_url))
    except BadSignature:
        return PlainTextResponse("The request signature does not match.", status_code=403)
    except Stale:
        return Response(status_code=204)  # answered, so it is not sent again; nothing done
    except BadMessage as exc:
        return PlainTextResponse(f"Not a message: {exc}", status_code=400)
    number = phone_key(state.context.phone_secret, message.sender)
    handled = message_key(state.context.phone_secret, gateway.name, message.message_id)
    done, text = state.recent.get(handled)
    if done or handled in state.handling:  # a retry or a replay: counted nowhere
        return await _again(gateway, message, text)
    # Counted before it is handled, so that a parallel burst is limited like a sequence, and
    # given back if it turns out to have been handled before.
    if not state.limiter.allow(number.hex()):
        return await gateway.respond(message, None)  # a flood: read nothing more, say nothing
    state.handling.add(handled)
    try:
        async with connection(state.pool) as conn:
            again, text = await _handle(conn, state, message, number, handled)
    finally:
        state.handling.discard(handled)
    if again:
        state.limiter.give_back(number.hex())
        return await _again(gateway, message, text)
    return await gateway.respond(message, text)  # after the commit: nothing accepted is lost


async def _again(gateway: Gateway, message: Inbound, text: str | None) -> Response:
    """The answer to a message handled before: the same reply where it goes back to whoever
    called (a retried Twilio webhook); nothing where it would go out to the phone again (for
    Vonage, the reply was sent when the message was first handled, and a replay must not
    text the phone)."""
    return await gateway.respond(message, text if gateway.replies_in_response else None)


async def _handle(
    conn: Connection, state: SmsState, message: Inbound, number: bytes, handled: bytes
) -> tuple[bool, str | None]:
    """Whether the message was handled before, and the reply to it: handled in one
    transaction under a lock on its number, or the reply already given."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))", number.hex())
        earlier = await store.handled(conn, number)
        done, text = earlier.reply_to(handled)
        if not done:  # a conversation that ended while this waited for the lock
            done, text = state.recent.get(handled)
        if done:
            return True, text
        reply = await reply_to(conn, state.context, message, number)
        # The submission's transaction writes nothing else (a reply kept beside it would be
        # joinable to it); STOP leaves no row to keep it on; HELP, NEWS and unknown codes
        # change no conversation.
        kept = (
            reply.touched
            and not reply.submitted
            and await store.remember_reply(conn, number, handled, reply.text)
        )
    if not kept:
        # No conversation row remembers this message (or, if it ended, the earlier ones):
        # they are kept in this process's memory for as long as the gateway would still act
        # on them, and nowhere else.
        if reply.touched:
            for key in earlier.keys:
                state.recent.put(key, None)
        state.recent.put(handled, reply.text)
    return False, reply.text


def sms_state(
    pool: Pool, context: Context, *, gateways: dict[str, Gateway], public_url: str
) -> SmsState:
    return SmsState(
        pool=pool,
        context=context,
        gateways=gateways,
        public_url=public_url,
        limiter=RateLimiter(limit=30, window=600),
        recent=RecentReplies(),
        handling=set(),
    )
