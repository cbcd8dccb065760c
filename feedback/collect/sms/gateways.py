"""SMS gateway adapters: each reads a provider's inbound webhook (checking its signature, and
keeping only the fields we need: location fields such as FromCity are never read, stored or
logged) and writes the provider's reply. The conversation never sees which gateway it is."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from xml.sax.saxutils import escape

import httpx
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from feedback.collect.sms.gsm import is_gsm7
from feedback.errors import FeedbackError

log = logging.getLogger(__name__)


class BadSignature(FeedbackError):
    pass


class BadMessage(FeedbackError):
    pass


class Stale(FeedbackError):
    """A correctly signed message from too long ago (a replay, or a retry the conversation
    cannot use any more): answered, and nothing is done or sent."""


@dataclass(frozen=True, slots=True)
class Inbound:
    gateway: str
    message_id: str
    sender: str  # the phone number: used in memory, never stored or logged
    to: str
    body: str


class Gateway(Protocol):
    name: str
    # Whether the reply goes back in the webhook's response, to whoever called (Twilio's
    # TwiML), rather than out to the phone through the gateway's API (Vonage).
    replies_in_response: bool

    async def receive(self, request: Request, url: str) -> Inbound:
        """The message, once its signature for ``url`` (what the gateway called) holds."""
        ...

    async def respond(self, message: Inbound, text: str | None) -> Response:
        """Answer the webhook, sending ``text`` to the sender (nothing when None)."""
        ...


def _fields(form: FormData) -> dict[str, str]:
    fields = {}
    for name, value in form.multi_items():
        if not isinstance(value, str) or name in fields:
            raise BadMessage("a webhook field is repeated or is a file")
        fields[name] = value
    return fields


def twilio_signature(auth_token: bytes, url: str, params: Mapping[str, str]) -> str:
    """X-Twilio-Signature: base64 HMAC-SHA1 of the full URL followed by every parameter's name
    and value, sorted by name."""
    data = url + "".join(name + params[name] for name in sorted(params))
    return base64.b64encode(hmac.new(auth_token, data.encode(), hashlib.sha1).digest()).decode()


class Twilio:
    """Twilio's Messaging webhook (form-encoded POST) and TwiML replies."""

    name = "twilio"
    replies_in_response = True

    def __init__(self, auth_token: bytes) -> None:
        self._auth_token = auth_token

    async def receive(self, request: Request, url: str) -> Inbound:
        fields = _fields(await request.form(max_files=0, max_fields=64))
        given = request.headers.get("x-twilio-signature", "")
        expected = twilio_signature(self._auth_token, url, fields)
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise BadSignature("the X-Twilio-Signature does not match")
        try:
            return Inbound(
                self.name,
                fields["MessageSid"],
                fields["From"],
                fields["To"],
                fields.get("Body", ""),
            )
        except KeyError as exc:
            raise BadMessage(f"the webhook has no {exc.args[0]}") from None

    async def respond(self, message: Inbound, text: str | None) -> Response:
        reply = "" if text is None else f"<Message>{escape(text)}</Message>"
        return Response(
            f'<?xml version="1.0" encoding="UTF-8"?><Response>{reply}</Response>',
            media_type="text/xml",
        )


def _check_fresh(fields: Mapping[str, str]) -> None:
    """The signed time of a Vonage message (``timestamp``, else ``message-timestamp``) must be
    within FRESH_FOR of now."""
    try:
        if "timestamp" in fields:
            sent = dt.datetime.fromtimestamp(int(fields["timestamp"]), dt.UTC)
        else:
            sent = dt.datetime.strptime(fields["message-timestamp"], "%Y-%m-%d %H:%M:%S").replace(
                tzinfo=dt.UTC
            )
    except (KeyError, ValueError, OverflowError, OSError):
        raise BadMessage("the message carries no readable timestamp") from None
    if abs(dt.datetime.now(dt.UTC) - sent) > FRESH_FOR:
        raise Stale("the message's signed time is too far from now")


def vonage_signature(secret: bytes, params: Mapping[str, str]) -> str:
    """Vonage's signed webhooks, SHA-256 HMAC method: the parameters but ``sig``, sorted by
    name, each as ``&name=value`` (with & and = in values written as _), keyed by the
    signature secret, in upper-case hex."""
    query = vonage_signed_text(params)
    return hmac.new(secret, query.encode(), hashlib.sha256).hexdigest().upper()


def vonage_signed_text(params: Mapping[str, str]) -> str:
    """What Vonage signs, whatever the method."""
    return "".join(
        f"&{name}={params[name].replace('&', '_').replace('=', '_')}"
        for name in sorted(params)
        if name != "sig"
    )


# A signed message older than this (or this far in the future) is not acted on: a replay would
# otherwise send its reply to the survivor's phone again. The webhook remembers the messages of
# ended conversations in memory for as long (RecentReplies), so within it a replay is known.
# A retry later than this (the service was away for longer) is answered and not acted on: the
# survivor, who got no reply, texts again.
FRESH_FOR = dt.timedelta(minutes=10)


class Vonage:
    """Vonage's SMS API: the inbound webhook (a POST form, signed with ``sig``; never GET,
    whose query string would carry the number and the answer into every proxy's log) is
    answered 204 with no body, and the reply is sent through the SMS API (POST
    {api_url}/sms/json), as Vonage does not read replies from the webhook."""

    name = "vonage"
    replies_in_response = False

    def __init__(
        self,
        *,
        api_key: str,
        api_secret: str,
        signature_secret: bytes,
        api_url: str,
        client: httpx.AsyncClient,
    ) -> None:
        self._api_key, self._api_secret = api_key, api_secret
        self._signature_secret = signature_secret
        self._api_url = api_url.rstrip("/")
        self._client = client

    async def receive(self, request: Request, url: str) -> Inbound:
        if request.method != "POST":
            raise BadMessage("set the Vonage webhook to POST: a GET puts the message in the URL")
        fields = _fields(await request.form(max_files=0, max_fields=64))
        expected = vonage_signature(self._signature_secret, fields)
        if not hmac.compare_digest(fields.get("sig", "").upper().encode(), expected.encode()):
            raise BadSignature("the sig parameter does not match")
        _check_fresh(fields)
        try:
            return Inbound(
                self.name,
                fields["messageId"],
                fields["msisdn"],
                fields["to"],
                fields.get("text", ""),
            )
        except KeyError as exc:
            raise BadMessage(f"the webhook has no {exc.args[0]}") from None

    async def respond(self, message: Inbound, text: str | None) -> Response:
        if text is not None:
            await self._send(to=message.sender, sender=message.to, text=text)
        return Response(status_code=204)

    async def _send(self, *, to: str, sender: str, text: str) -> None:
        """One message through the SMS API; a failure is logged (without the number) and
        the webhook still answered, so that Vonage does not resend the survivor's message."""
        form = {
            "api_key": self._api_key,
            "api_secret": self._api_secret,
            "from": sender.lstrip("+"),
            "to": to.lstrip("+"),
            "text": text,
        }
        if not is_gsm7(text):
            form["type"] = "unicode"
        try:
            response = await self._client.post(f"{self._api_url}/sms/json", data=form)
            status = response.json()["messages"][0]["status"]
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
            log.warning("vonage: a reply was not sent (%s)", type(exc).__name__)
            return
        if status != "0":
            log.warning("vonage: a reply was refused with status %s", status)
