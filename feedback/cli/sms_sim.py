"""`feedback sms-sim`: play a survivor's phone against a running server, posting webhooks
signed exactly as Twilio signs them, so that anyone can try the SMS flow without a gateway."""

from __future__ import annotations

import json
import re
import secrets
import sys
from collections.abc import Iterable, Iterator

import click
import httpx

from feedback.collect.sms.gateways import twilio_signature
from feedback.config import Settings
from feedback.errors import FeedbackError

DEMO_PHONE = "+15550100000"


def _demo_facts(settings: Settings) -> dict[str, str]:
    path = settings.data_dir / "demo.json"
    try:
        facts: dict[str, str] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return facts


def send(client: httpx.Client, url: str, token: str, *, sender: str, to: str, body: str) -> str:
    """One message as Twilio would post it; the reply text ('' when none is sent)."""
    params = {
        "MessageSid": "SM" + secrets.token_hex(16),
        "AccountSid": "AC" + "0" * 32,
        "From": sender,
        "To": to,
        "Body": body,
        "NumMedia": "0",
    }
    signature = twilio_signature(token.encode(), url, params)
    response = client.post(url, data=params, headers={"X-Twilio-Signature": signature})
    if response.status_code != 200:
        raise FeedbackError(f"the server answered {response.status_code}: {response.text[:200]}")
    found = re.search(r"<Message>(.*)</Message>", response.text, flags=re.S)
    if found is None:
        return ""
    return found[1].replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


@click.command("sms-sim")
@click.option("--url", help="The webhook (default: sms_webhook_url of the demo's demo.json).")
@click.option("--token", help="The auth token that signs (default: the demo's sms_auth_token).")
@click.option("--from", "sender", default=DEMO_PHONE, show_default=True, help="This phone.")
@click.option("--to", "to", help="The organisation's number (default: the demo's).")
@click.option(
    "--message",
    "-m",
    "messages",
    multiple=True,
    help="Send these and stop (repeat), instead of reading lines typed at the prompt.",
)
def sms_sim(
    url: str | None,
    token: str | None,
    sender: str,
    to: str | None,
    messages: tuple[str, ...],
) -> None:
    """Text the server as a survivor would: each line you type is one SMS; replies are shown
    as the phone would show them. Start with a code from `feedback invitations batch --sms`
    (the demo prints one)."""
    try:
        facts = _demo_facts(Settings.from_env())
        url = url or facts.get("sms_webhook_url")
        token = token or facts.get("sms_auth_token")
        to = to or facts.get("sms_number") or "+15550009999"
        if not url or not token:
            raise FeedbackError(
                "no webhook URL or auth token: pass --url and --token, or run `feedback demo`"
            )
        lines: Iterable[str] = messages or _typed()
        with httpx.Client(timeout=30) as client:
            for body in lines:
                reply = send(client, url, token, sender=sender, to=to, body=body)
                click.echo(f"< {reply}" if reply else "< (no reply)")
    except (FeedbackError, httpx.HTTPError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


def _typed() -> Iterator[str]:
    click.echo("Type a message and press Enter; Ctrl-D ends.", err=True)
    for line in sys.stdin:
        yield line.rstrip("\n")
