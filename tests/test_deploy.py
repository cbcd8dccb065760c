"""deploy/: the real Caddy in front of both apps on loopback, with Caddy's own CA, and the
systemd units checked by systemd-analyze."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from twilio.request_validator import RequestValidator

from feedback.db import Connection
from feedback.publish.accounts import create_user
from feedback.publish.invitations import create_open_link
from tests import factories
from tests.live import ROOT, LiveServer, free_port
from tests.publish.conftest import PASSWORD

pytestmark = pytest.mark.slow
DEPLOY = ROOT / "deploy"
AUTH_TOKEN = "t" * 32
SMS_NUMBER = "+15550009999"
CLIENTS = ("127.0.0.3", "127.0.0.4")
ADMIN = "admin@org.example"  # two survivors' phones, as loopback addresses


def program(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed (.ci/run installs it)")
    return found


def test_the_systemd_units_verify(tmp_path: Path) -> None:
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    assert {u.name for u in units} == {
        "feedback-survivor.service",
        "feedback-staff.service",
        "feedback-worker.service",
    }
    command = shutil.which("feedback") or str(ROOT / ".venv" / "bin" / "feedback")
    for unit in units:  # as installed: the wheel's command where /opt/feedback has it
        text = unit.read_text().replace("/opt/feedback/bin/feedback", command)
        (tmp_path / unit.name).write_text(text)
    checked = subprocess.run(
        [program("systemd-analyze"), "verify", *(str(tmp_path / u.name) for u in units)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert checked.stderr.strip() == "", checked.stderr  # unknown keys are only warned about


class Caddy:
    """`caddy run` with deploy/Caddyfile, its output in a file."""

    def __init__(self, tmp_path: Path, survivor: str, staff: str, port: int) -> None:
        self.port, self.staff_port = port, free_port()
        self.log_path = tmp_path / "caddy.log"
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "XDG_DATA_HOME": str(tmp_path / "data"),
            "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "FEEDBACK_SURVIVOR_SITE": f"localhost:{self.port}",
            "FEEDBACK_STAFF_SITE": f"localhost:{self.staff_port}",
            "FEEDBACK_SURVIVOR_UPSTREAM": survivor,
            "FEEDBACK_STAFF_UPSTREAM": staff,
            "FEEDBACK_HTTP_PORT": str(free_port()),
            "FEEDBACK_HTTPS_PORT": str(self.port),
            "FEEDBACK_CADDY_PAGES": str(DEPLOY / "pages"),
        }
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                [
                    program("caddy"), "run",
                    "--config", str(DEPLOY / "Caddyfile"), "--adapter", "caddyfile",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        root = tmp_path / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
        deadline = time.monotonic() + 30
        while not root.exists():
            assert self.process.poll() is None, self.log_path.read_text()
            assert time.monotonic() < deadline, self.log_path.read_text()
            time.sleep(0.1)
        self.trust = ssl.create_default_context(cafile=str(root))
        self.base_url = f"https://localhost:{self.port}"
        self.staff_url = f"https://localhost:{self.staff_port}"
        while True:
            try:
                httpx.get(self.base_url + "/healthz", verify=self.trust, timeout=2)
                return
            except httpx.TransportError:
                assert time.monotonic() < deadline, self.log_path.read_text()
                time.sleep(0.1)

    def client(self, source: str = "127.0.0.1") -> httpx.Client:
        """A client whose connections come from ``source``."""
        transport = httpx.HTTPTransport(local_address=source, verify=self.trust)
        return httpx.Client(base_url=self.base_url, transport=transport, timeout=30)

    def stop(self) -> str:
        self.process.terminate()
        self.process.wait(timeout=30)
        return self.log_path.read_text()


@contextmanager
def behind_caddy(
    database_url: str, tmp_path: Path, never: tuple[str, ...]
) -> Iterator[tuple[Caddy, LiveServer, LiveServer]]:
    """Both apps, each trusting only Caddy's address, and Caddy in front of them; afterwards,
    none of ``never`` is in what any of the three wrote."""
    caddy_port = free_port()
    env = {
        "FEEDBACK_TRUSTED_PROXIES": "127.0.0.1/32",
        "FEEDBACK_SMS_AUTH_TOKEN": AUTH_TOKEN,
        "FEEDBACK_LOG_LEVEL": "INFO",
        "FEEDBACK_PUBLIC_URL": f"https://localhost:{caddy_port}",
    }
    survivor = LiveServer(database_url, tmp_path / "survivor.log", app="survivor", **env)
    staff = LiveServer(database_url, tmp_path / "staff.log", app="staff", **env)
    caddy = None
    try:
        caddy = Caddy(tmp_path, f"127.0.0.1:{survivor.port}", f"127.0.0.1:{staff.port}", caddy_port)
        yield caddy, survivor, staff
    finally:
        logs = [caddy.stop()] if caddy is not None else []
        for server in (survivor, staff):
            if server.process.poll() is None:
                logs.append(server.stop())
            else:
                logs.append(server.log_path.read_text())
        for secret in never:
            assert all(secret not in log for log in logs), f"{secret} was written"


async def test_caddy_terminates_tls_and_passes_the_client_address_to_the_rate_limits(
    conn: Connection, database_url: str, tmp_path: Path
) -> None:
    t = await factories.tenant(conn)
    await create_user(
        conn,
        organisation_id=t.organisation_id,
        email=ADMIN,
        role="admin",
        programs=[],
        password=PASSWORD,
    )
    await conn.execute("UPDATE organisations SET sms_number = $1", SMS_NUMBER)
    await conn.execute("UPDATE programs SET languages = '{en}'")
    poster = await create_open_link(conn, program_id=t.program_id)
    with behind_caddy(database_url, tmp_path, (*CLIENTS, poster)) as (caddy, survivor, staff):
        check_caddy(caddy, survivor, staff, poster)


def check_caddy(caddy: Caddy, survivor: LiveServer, staff: LiveServer, poster: str) -> None:
    with caddy.client() as client:
        health = client.get("/healthz")
        assert health.status_code == 200
        assert health.headers["strict-transport-security"].startswith("max-age=")
        assert "server" not in health.headers
        assert client.get("/staff/healthz").status_code == 404  # not on the survivors' site
        healthy = client.get(caddy.staff_url + "/staff/healthz")
        assert healthy.status_code == 200
        assert healthy.json()["database"] == "ok"
        # The staff app hears plain http from Caddy, yet builds https links and redirects,
        # and its cookie is Secure: X-Forwarded-Proto, from the trusted proxy only.
        login = client.post(
            caddy.staff_url + "/staff/login",
            data={"email": ADMIN, "password": PASSWORD},
            headers={"sec-fetch-site": "same-origin"},
        )
        assert login.status_code == 303, login.text
        assert login.headers["location"].startswith(caddy.staff_url + "/staff/")
        assert "secure" in login.headers["set-cookie"].lower()
        home = client.get(caddy.staff_url + "/staff/")
        assert f'action="{caddy.staff_url}/staff/logout"' in home.text
    # Straight to the app from an address it does not trust, the header changes nothing.
    direct = httpx.HTTPTransport(local_address=CLIENTS[0])
    with httpx.Client(base_url=staff.base_url, transport=direct, timeout=30) as client:
        forged = client.get("/staff/login", headers={"X-Forwarded-Proto": "https"})
    assert f'action="{staff.base_url}/staff/login"' in forged.text

    # Five answers a client to a poster link: a client who sends X-Forwarded-For is still one
    # client, because Caddy replaces the header; another client is counted on its own.
    first, second = CLIENTS
    with caddy.client(first) as client:
        for i in range(6):
            posted = client.post(
                f"/s/{poster}",
                data={"q.believed": "4"},
                headers={"X-Forwarded-For": f"198.51.100.{i}"},
            )
            assert posted.status_code == (200 if i < 5 else 429), (i, posted.text)
    with caddy.client(second) as client:
        assert client.post(f"/s/{poster}", data={"q.believed": "4"}).status_code == 200
    # Straight to the app, from an address it does not trust: the header counts for nothing.
    direct = httpx.HTTPTransport(local_address=first)
    with httpx.Client(base_url=survivor.base_url, transport=direct, timeout=30) as client:
        spoofed = client.post(
            f"/s/{poster}", data={"q.believed": "4"}, headers={"X-Forwarded-For": "192.0.2.9"}
        )
        assert spoofed.status_code == 429

    # The SMS gateway signs the https address it calls; the app checks that very address.
    params = {
        "MessageSid": "SM" + "1" * 32,
        "AccountSid": "AC" + "0" * 32,
        "From": "+15550001111",
        "To": SMS_NUMBER,
        "Body": "HELP",
    }
    url = f"{caddy.base_url}/sms/twilio"
    with caddy.client(second) as client:
        signed = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
        texted = client.post(url, data=params, headers={"X-Twilio-Signature": signed})
        assert texted.status_code == 200, texted.text
        upstream = f"{survivor.base_url}/sms/twilio"
        wrong = RequestValidator(AUTH_TOKEN).compute_signature(upstream, params)
        refused = client.post(url, data=params, headers={"X-Twilio-Signature": wrong})
        assert refused.status_code == 403

    # The app gone: Caddy answers with the neutral page, quick exit and all.
    survivor.stop()
    with caddy.client(second) as client:  # (Caddy's error log would name it and the link)
        gone = client.get(f"/s/{poster}")
    assert gone.status_code == 502
    assert "<title>Your experience</title>" in gone.text
    assert "Leave this page" in gone.text
    assert "caddy" not in gone.text.lower()
