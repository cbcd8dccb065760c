"""SMS gateway adapters: each reads a provider's inbound webhook (checking its signature, and
keeping only the fields we need: location fields such as FromCity are never read, stored or
logged) and writes the provider's reply. The conversation never sees which gateway it is."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from xml.sax.saxutils import escape

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from feedback.errors import FeedbackError


class BadSignature(FeedbackError):
    pass


class BadMessage(FeedbackError):
    pass


@dataclass(frozen=True, slots=True)
class Inbound:
    gateway: str
    message_id: str
    sender: str  # the phone number: used in memory, never stored or logged
    to: str
    body: str


class Gateway(Protocol):
    name: str

    async def receive(self, request: Request, url: str, secret: bytes) -> Inbound:
        """The message, once its signature for ``url`` (what the gateway called) holds."""
        ...

    def reply(self, text: str | None) -> Response: ...


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

    async def receive(self, request: Request, url: str, secret: bytes) -> Inbound:
        fields = _fields(await request.form(max_files=0, max_fields=64))
        given = request.headers.get("x-twilio-signature", "")
        if not hmac.compare_digest(given.encode(), twilio_signature(secret, url, fields).encode()):
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

    def reply(self, text: str | None) -> Response:
        message = "" if text is None else f"<Message>{escape(text)}</Message>"
        return Response(
            f'<?xml version="1.0" encoding="UTF-8"?><Response>{message}</Response>',
            media_type="text/xml",
        )


GATEWAYS: dict[str, Gateway] = {"twilio": Twilio()}
