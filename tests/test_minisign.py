"""minisign's formats, checked against the reference `minisign` both ways: what we sign it
verifies (pre-hashed, with the trusted comment), and what it signs we verify."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from feedback.minisign import BadSignature, PublicKey, sign, verify

TRUSTED = "series=quarterly sequence=3 previous=9f2c"


def minisign(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    found = shutil.which("minisign")
    if found is None:
        pytest.fail("minisign is not installed (.ci/run installs it)")
    return subprocess.run(
        [found, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=30
    )


def test_the_reference_minisign_verifies_what_we_sign(tmp_path: Path) -> None:
    key = SigningKey.generate()  # a test's own key: the package builds none outside signing.py
    public = PublicKey.of(bytes(key.verify_key))
    message = b"manifest\n" * 1000
    (tmp_path / "manifest.json").write_bytes(message)
    (tmp_path / "manifest.json.minisig").write_text(
        sign(message, key, trusted_comment=TRUSTED, untrusted_comment="feedback publication")
    )
    (tmp_path / "org.pub").write_text(public.file("feedback signing key"))
    checked = minisign("-V", "-H", "-p", "org.pub", "-m", "manifest.json", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert f"Trusted comment: {TRUSTED}" in checked.stdout
    by_line = minisign("-V", "-P", public.line(), "-m", "manifest.json", cwd=tmp_path)
    assert by_line.returncode == 0, by_line.stderr
    (tmp_path / "manifest.json").write_bytes(message + b" ")
    changed = minisign("-V", "-p", "org.pub", "-m", "manifest.json", cwd=tmp_path)
    assert changed.returncode != 0


def test_we_verify_what_the_reference_minisign_signs(tmp_path: Path) -> None:
    made = minisign("-G", "-W", "-p", "key.pub", "-s", "key.sec", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    message = b"a release card"
    (tmp_path / "card.json").write_bytes(message)
    for legacy in ((), ("-l",)):
        signed = minisign(
            "-S", *legacy, "-s", "key.sec", "-m", "card.json", "-t", TRUSTED, cwd=tmp_path
        )
        assert signed.returncode == 0, signed.stderr
        public = PublicKey.parse((tmp_path / "key.pub").read_text())
        signature = (tmp_path / "card.json.minisig").read_text()
        assert verify(message, signature, public) == TRUSTED


def test_a_changed_file_comment_or_key_is_named(tmp_path: Path) -> None:
    key = SigningKey.generate()
    public = PublicKey.of(bytes(key.verify_key))
    signature = sign(b"figures", key, trusted_comment=TRUSTED, untrusted_comment="x")
    assert verify(b"figures", signature, public) == TRUSTED
    with pytest.raises(BadSignature, match="does not match the file"):
        verify(b"figures!", signature, public)
    forged = signature.replace("sequence=3", "sequence=4")
    with pytest.raises(BadSignature, match="trusted comment does not match"):
        verify(b"figures", forged, public)
    other = PublicKey.of(bytes(SigningKey.generate().verify_key))
    with pytest.raises(BadSignature, match=f"not with {other.hex_id}"):
        verify(b"figures", signature, other)
    with pytest.raises(BadSignature, match="not a minisign signature file"):
        verify(b"figures", "untrusted comment: x\n", public)
    with pytest.raises(BadSignature, match="one line"):
        sign(b"figures", key, trusted_comment="a\nb", untrusted_comment="x")
    with pytest.raises(BadSignature, match="not a minisign Ed25519 public key"):
        PublicKey.parse("untrusted comment: x\nAAAA\n")
