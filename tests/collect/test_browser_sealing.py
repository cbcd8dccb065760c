"""The page's sealing code against the references: libsodium itself (in Node) and PyNaCl."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest
from nacl.public import PrivateKey, SealedBox

from feedback.envelope import Envelope

ROOT = Path(__file__).resolve().parents[2]
ORACLE = ROOT / "tests" / "js" / "oracle.mjs"
STATIC = ROOT / "feedback" / "collect" / "static"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def oracle(op: str, **fields: object) -> dict[str, str]:
    result = subprocess.run(
        ["node", str(ORACLE)],
        input=json.dumps({"op": op, **fields}),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=ROOT,
    )
    answer: dict[str, str] = json.loads(result.stdout)
    return answer


@pytest.fixture(scope="module")
def recipient() -> PrivateKey:
    return PrivateKey.generate()


@pytest.mark.parametrize("size", [0, 1, 1024, 16384])
def test_page_seals_what_pynacl_opens(recipient: PrivateKey, size: int) -> None:
    message = bytes(range(256)) * (size // 256) + bytes(size % 256)
    sealed = base64.b64decode(
        oracle("seal", message=b64(message), public_key=b64(bytes(recipient.public_key)))["sealed"]
    )
    assert len(sealed) == size + 48
    assert SealedBox(recipient).decrypt(sealed) == message


def test_pynacl_seals_what_libsodium_in_node_opens(recipient: PrivateKey) -> None:
    message = "Mi respuesta: sí ✓".encode()
    sealed = SealedBox(recipient.public_key).encrypt(message)
    opened = oracle(
        "open_libsodium",
        sealed=b64(sealed),
        public_key=b64(bytes(recipient.public_key)),
        secret_key=b64(bytes(recipient)),
    )
    assert base64.b64decode(opened["message"]) == message


def test_page_seals_what_libsodium_opens(recipient: PrivateKey) -> None:
    message = b"same construction as crypto_box_seal"
    sealed = oracle("seal", message=b64(message), public_key=b64(bytes(recipient.public_key)))
    opened = oracle(
        "open_libsodium",
        sealed=sealed["sealed"],
        public_key=b64(bytes(recipient.public_key)),
        secret_key=b64(bytes(recipient)),
    )
    assert base64.b64decode(opened["message"]) == message


def test_libsodium_seals_what_pynacl_opens(recipient: PrivateKey) -> None:
    message = b"reference to reference"
    sealed = oracle(
        "seal_libsodium", message=b64(message), public_key=b64(bytes(recipient.public_key))
    )
    assert SealedBox(recipient).decrypt(base64.b64decode(sealed["sealed"])) == message


# libsodium's published crypto_box vector (test/default/box.c and box.exp): Alice's secret key,
# Bob's public key, a nonce, a 131-byte message, and the 147-byte MAC || ciphertext.
ALICE_SK = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
BOB_PK = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
NONCE = bytes.fromhex("69696ee955b62b73cd62bda875fc73d68219e0036b7a0b37")
MESSAGE = bytes.fromhex(
    "be075fc53c81f2d5cf141316ebeb0c7b5228c52a4c62cbd44b66849b64244ffce5ecbaaf33bd751a1ac728d45e6c"
    "61296cdc3c01233561f41db66cce314adb310e3be8250c46f06dceea3a7fa1348057e2f6556ad6b1318a024a838f"
    "21af1fde048977eb48f59ffd4924ca1c60902e52f0a089bc76897040e082f937763848645e0705"
)
EXPECTED = bytes.fromhex(
    "f3ffc7703f9400e52a7dfb4b3d3305d98e993b9f48681273c29650ba32fc76ce48332ea7164d96a4476fb8c531a1"
    "186ac0dfc17c98dce87b4da7f011ec48c97271d2c20f9b928fe2270d6fb863d51738b48eeee314a7cc8ab9321645"
    "48e526ae90224368517acfeabd6bb3732bc0e9da99832b61ca01b6de56244a9e88d5f9b37973f622a43d14a6599b"
    "1f654cb45a74e355a5"
)
SMALL_ORDER = bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")


def test_page_box_matches_libsodiums_published_vector() -> None:
    box = oracle(
        "box_easy",
        message=b64(MESSAGE),
        nonce=b64(NONCE),
        public_key=b64(BOB_PK),
        secret_key=b64(ALICE_SK),
    )
    assert base64.b64decode(box["box"]) == EXPECTED


def test_page_refuses_small_order_public_keys() -> None:
    answer = oracle("beforenm", public_key=b64(SMALL_ORDER), secret_key=b64(ALICE_SK))
    assert "error" in answer


@pytest.mark.parametrize(
    "envelope",
    [
        Envelope("rights-based", 1, "en", {}),
        Envelope(
            "rights-based", 1, "es", {"believed": 5, "pressured": "prefer_not", "gender": "woman"}
        ),
        Envelope(
            "rights-based",
            3,
            "es",
            {"safe_now": 1, "time_in_program": "3_to_6"},
            'Gracias "por" todo,\nañadan más horas ✓ \\ é',
        ),
        Envelope("rights-based", 1, "en", {"believed": 2}, "x" * 1000),
    ],
)
def test_page_builds_the_same_envelope_bytes(envelope: Envelope) -> None:
    padded = oracle(
        "envelope",
        envelope={
            "survey": envelope.survey,
            "surveyVersion": envelope.survey_version,
            "language": envelope.language,
            "answers": dict(envelope.answers),
            "comment": envelope.comment,
        },
    )["padded"]
    assert base64.b64decode(padded) == envelope.to_plaintext()


def test_committed_bundle_matches_its_sources(tmp_path: Path) -> None:
    subprocess.run(
        ["node", str(ROOT / "feedback/collect/js/build.mjs"), str(tmp_path)],
        check=True,
        timeout=120,
        cwd=ROOT,
    )
    for name in ("survey.js", "exit.js"):
        assert (tmp_path / name).read_bytes() == (STATIC / name).read_bytes(), (
            f"{name} is stale: run `npm run build` and commit feedback/collect/static/"
        )
