"""`feedback keys` and the key library: wrapping, unlocking, rotation, export."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
from pathlib import Path

import nacl.pwhash
import pytest
from nacl.public import PrivateKey, SealedBox

from feedback.aggregate.keys import (
    CannotOpen,
    KeyFileError,
    UnlockedKey,
    create_collection_key,
    load_key_file,
    read_key_file,
    unlock,
    write_key_file,
)
from feedback.db import Connection
from feedback.keyrows import select_keys
from feedback.passphrases import WeakPassphrase, check_key_passphrase, check_passphrase
from feedback.sealing import load_public_key, seal
from feedback.wrapping import INSECURE_TEST, WrongPassphrase, unwrap, wrap
from tests.cli import run_feedback

STRONG = "lantern quietly orbit mossy teapot"


def feedback(database_url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return run_feedback(
        "keys",
        *args,
        database_url=database_url,
        stdin=stdin,
        env={"FEEDBACK_INSECURE_TEST_KDF": "true"},
    )


async def organisation(conn: Connection, slug: str = "org") -> object:
    return await conn.fetchval(
        "INSERT INTO organisations (slug, name) VALUES ($1, $1) RETURNING id", slug
    )


@pytest.mark.parametrize(
    ("passphrase", "reason"),
    [
        ("short one", "at least 12"),
        ("password1234", "too easy to guess"),
        ("aaaaaaaaaaaaaaaaaaaa", "too easy to guess"),
        ("Correct horse battery staple!", "famous example"),
        ("yellowtaxi42", "too easy to guess"),  # zxcvbn score 3: enough for staff only
        ("x" * 5000, "too easy to guess"),  # scored on its first characters only
    ],
)
def test_weak_key_passphrases_are_refused_with_a_reason(passphrase: str, reason: str) -> None:
    with pytest.raises(WeakPassphrase, match=reason):
        check_key_passphrase(passphrase)


def test_staff_passphrases_need_a_lower_score_than_key_passphrases() -> None:
    check_passphrase("yellowtaxi42")  # score 3: a staff login is guessed online only
    with pytest.raises(WeakPassphrase):
        check_passphrase("password1234")


def test_wrap_and_unwrap() -> None:
    secret = os.urandom(32)
    wrapped = wrap(secret, STRONG, cost=INSECURE_TEST)
    assert len(wrapped.ciphertext) == 72
    assert unwrap(wrapped, STRONG) == secret
    with pytest.raises(WrongPassphrase, match="wrong passphrase"):
        unwrap(wrapped, STRONG + "!")


async def test_created_key_unlocks_and_opens_what_its_public_half_sealed(conn: Connection) -> None:
    org_id = await organisation(conn)
    key_id = await create_collection_key(conn, organisation_id=org_id, passphrase=STRONG)  # type: ignore[arg-type]
    [row] = await select_keys(conn, "collection_keys", organisation_id=org_id)  # type: ignore[arg-type]
    assert row.wrapped is not None
    # libsodium's SENSITIVE limits: an offline guesser pays about 3 s and 1 GiB per guess.
    assert row.wrapped.opslimit == nacl.pwhash.argon2id.OPSLIMIT_SENSITIVE
    assert row.wrapped.memlimit == nacl.pwhash.argon2id.MEMLIMIT_SENSITIVE
    sealed = seal(load_public_key(row.public_key), b"answers")
    key = await unlock(conn, organisation_id=org_id, passphrase=STRONG)  # type: ignore[arg-type]
    assert key.id == key_id
    assert key.open(sealed) == b"answers"
    with pytest.raises(CannotOpen):
        key.open(b"x" * 80)


async def test_key_file_round_trip(conn: Connection, tmp_path: Path) -> None:
    org_id = await organisation(conn)
    await create_collection_key(
        conn,
        organisation_id=org_id,  # type: ignore[arg-type]
        passphrase=STRONG,
        cost=INSECURE_TEST,
    )
    key = await unlock(conn, organisation_id=org_id, passphrase=STRONG)  # type: ignore[arg-type]
    path = tmp_path / "key.json"
    write_key_file(key, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = await load_key_file(conn, org_id, path)  # type: ignore[arg-type]
    assert again.id == key.id
    assert bytes(again.private_key) == bytes(key.private_key)

    forged = tmp_path / "forged.json"  # the right key id, another private key
    write_key_file(UnlockedKey(key.id, PrivateKey.generate()), forged)
    with pytest.raises(KeyFileError, match="does not match the public key stored"):
        await load_key_file(conn, org_id, forged)  # type: ignore[arg-type]
    other = await organisation(conn, "other")
    with pytest.raises(KeyFileError, match="not a collection key of this organisation"):
        await load_key_file(conn, other, path)  # type: ignore[arg-type]


async def test_cli_key_ceremony(conn: Connection, database_url: str, tmp_path: Path) -> None:
    org_id = await organisation(conn, "acme")

    weak = feedback(database_url, "create", stdin="password1234\npassword1234\n")
    assert weak.returncode == 1
    assert weak.stderr.strip().splitlines()[-1].startswith("error: that passphrase is too easy")
    mismatch = feedback(database_url, "create", stdin=f"{STRONG}\n{STRONG}x\n")
    assert mismatch.returncode != 0
    assert "do not match" in mismatch.stderr
    assert await conn.fetchval("SELECT count(*) FROM collection_keys") == 0

    created = feedback(database_url, "create", stdin=f"{STRONG}\n{STRONG}\n")
    assert created.returncode == 0, created.stderr
    assert "created collection key" in created.stdout
    [row] = await select_keys(conn, "collection_keys", organisation_id=org_id)  # type: ignore[arg-type]
    assert base64.b64encode(row.public_key).decode() in created.stdout
    assert row.wrapped is not None
    assert row.wrapped.opslimit == INSECURE_TEST.opslimit  # the tests' setting was honoured
    assert await conn.fetchval("SELECT count(*) FROM signing_keys WHERE retired_week IS NULL") == 1
    again = feedback(database_url, "create", stdin=f"{STRONG}\n{STRONG}\n")
    assert again.returncode == 1
    assert "keys rotate" in again.stderr

    old_sealed = seal(load_public_key(row.public_key), b"before rotation")
    # For automation, the passphrase once on standard input: still refused when weak.
    piped = ("rotate", "--passphrase-file", "-")
    weak_piped = feedback(database_url, *piped, stdin="password1234\n")
    assert weak_piped.stderr.strip().splitlines()[-1].startswith("error: that passphrase is too")
    empty = feedback(database_url, *piped, stdin="")
    assert "no passphrase on standard input" in empty.stderr
    rotated = feedback(database_url, *piped, stdin=f"{STRONG}\n")
    assert rotated.returncode == 0, rotated.stderr
    keys = await select_keys(conn, "collection_keys", organisation_id=org_id)  # type: ignore[arg-type]
    assert [k.retired_week is None for k in keys] == [False, True]

    listed = feedback(database_url, "list")
    assert listed.stdout.count("collection") == 2
    assert "current" in listed.stdout
    assert "retired" in listed.stdout

    wrong = feedback(database_url, "export", "--out", str(tmp_path / "k.json"), stdin="nope\n")
    assert wrong.returncode == 1
    # (getpass may warn first that it cannot hide input read from a pipe)
    assert wrong.stderr.strip().splitlines()[-1] == (
        "error: wrong passphrase: nothing was changed; try again"
    )
    assert "Traceback" not in wrong.stderr
    assert not (tmp_path / "k.json").exists()

    exported = feedback(
        database_url,
        "export",
        "--key-id",
        str(row.id),
        "--out",
        str(tmp_path / "k.json"),
        stdin=f"{STRONG}\n",
    )
    assert exported.returncode == 0, exported.stderr
    key = read_key_file(tmp_path / "k.json")
    audited = [r["action"] for r in await conn.fetch("SELECT action FROM audit_log ORDER BY id")]
    # Collection and signing keys made, the collection key rotated, then exported.
    assert audited == ["key.create", "key.create", "key.rotate", "key.export"]
    assert key.id == row.id
    assert SealedBox(key.private_key).decrypt(old_sealed) == b"before rotation"
