"""Publication bundles and their check, `feedback verify` (issue 14's format; the summary and the
release cards that go in a bundle come later).

A bundle is a folder (or the same as a .tar.gz) holding ``manifest.json``, its minisign
signature ``manifest.json.minisig``, and the files the manifest lists, each with its SHA-256
and size. The manifest names the organisation, the series, a sequence number, the issue date,
the date the next publication of the series is due, and the SHA-256 of the previous manifest
of the series (a chain); the signature's trusted comment repeats the series, the sequence and
the previous hash, so that the reference `minisign -V` shows them too.

With a state folder, the check remembers the last manifest it accepted per organisation and
series, and reports a rollback (a lower sequence), a fork (the same sequence with another
manifest, or a chain that does not lead back to the last one), a gap (missing sequences) and
a publication overdue against the date the last one promised.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
import re
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from feedback.errors import FeedbackError
from feedback.minisign import BadSignature, PublicKey, sign, verify

FORMAT = "feedback-publication/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.json.minisig"
NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


class BundleError(FeedbackError):
    pass


@dataclass(frozen=True, slots=True)
class Manifest:
    organisation: str
    series: str
    sequence: int
    issued: dt.date
    next_due: dt.date | None
    previous: str | None  # SHA-256 (hex) of the previous manifest of the series
    files: Mapping[str, tuple[str, int]]  # path -> (sha256 hex, size)
    corrects: int | None = None  # the sequence this publication corrects
    why: str | None = None

    def trusted_comment(self) -> str:
        return (
            f"organisation={self.organisation} series={self.series} sequence={self.sequence} "
            f"previous={self.previous or 'none'}"
        )

    def to_json(self) -> bytes:
        document: dict[str, Any] = {
            "format": FORMAT,
            "organisation": self.organisation,
            "series": self.series,
            "sequence": self.sequence,
            "issued": self.issued.isoformat(),
            "next_due": self.next_due.isoformat() if self.next_due else None,
            "previous": self.previous,
            "corrects": None
            if self.corrects is None
            else {"sequence": self.corrects, "why": self.why},
            "files": [
                {"path": path, "sha256": digest, "size": size}
                for path, (digest, size) in sorted(self.files.items())
            ],
        }
        return json.dumps(document, indent=2, sort_keys=True).encode() + b"\n"

    @classmethod
    def parse(cls, raw: bytes) -> Manifest:
        try:
            document = json.loads(raw)
            if document["format"] != FORMAT:
                raise BundleError(f"the manifest is not {FORMAT}")
            corrects = document.get("corrects") or {}
            found = cls(
                organisation=str(document["organisation"]),
                series=str(document["series"]),
                sequence=int(document["sequence"]),
                issued=dt.date.fromisoformat(document["issued"]),
                next_due=dt.date.fromisoformat(document["next_due"])
                if document["next_due"]
                else None,
                previous=document["previous"],
                files={
                    str(f["path"]): (str(f["sha256"]), int(f["size"])) for f in document["files"]
                },
                corrects=corrects.get("sequence"),
                why=corrects.get("why"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"the manifest is not readable ({exc})") from None
        for name in (found.organisation, found.series):
            if not NAME.fullmatch(name):
                raise BundleError(f"the manifest names {name!r}, which is not a short name")
        for path in found.files:
            _check_path(path)
        return found


def _check_path(path: str) -> None:
    parts = PurePosixPath(path).parts
    if not parts or path.startswith("/") or ".." in parts or path in (MANIFEST, SIGNATURE):
        raise BundleError(f"the manifest lists {path!r}, which is not a file inside the bundle")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_bundle(
    folder: Path,
    files: Mapping[str, bytes],
    *,
    organisation: str,
    series: str,
    sequence: int,
    issued: dt.date,
    next_due: dt.date | None,
    previous: str | None,
    signing_key: Any,  # nacl.signing.SigningKey, held by the worker only
    corrects: int | None = None,
    why: str | None = None,
) -> Manifest:
    """Write ``files`` and their signed manifest into ``folder`` (which must not exist)."""
    folder.mkdir(parents=True)
    for path, data in files.items():
        _check_path(path)
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    manifest = Manifest(
        organisation,
        series,
        sequence,
        issued,
        next_due,
        previous,
        {path: (sha256(data), len(data)) for path, data in files.items()},
        corrects,
        why,
    )
    raw = manifest.to_json()
    (folder / MANIFEST).write_bytes(raw)
    (folder / SIGNATURE).write_text(
        sign(
            raw,
            signing_key,
            trusted_comment=manifest.trusted_comment(),
            untrusted_comment=f"{organisation} {series} publication {sequence}",
        )
    )
    return manifest


def archive(folder: Path) -> bytes:
    """The bundle in ``folder`` as a .tar.gz holding that one folder, its files in order and
    dated the epoch, so that the same bundle always makes the same archive."""
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            info = tarfile.TarInfo(f"{folder.name}/{path.relative_to(folder).as_posix()}")
            data = path.read_bytes()
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


# The organisation-wide releases' place in a publication's figures (no program's short name
# has an underscore).
WHOLE_ORGANISATION = "_organisation"
MAX_FILES = 10_000
MAX_BYTES = 512 * 1024 * 1024  # a yearly publication of ten programs is about 3 MB


def unpack(packed: BinaryIO, into: Path, name: str) -> None:
    """Extract a .tar.gz of plain files into ``into``: refused (before anything is written)
    when it holds anything else, more than MAX_FILES files or more than MAX_BYTES."""
    too_big = f"{name} holds more than {MAX_FILES} files or {MAX_BYTES >> 20} MB: not a publication"
    try:
        with tarfile.open(fileobj=packed, mode="r:gz") as archive:
            # One header at a time, stopping at the first one past the limits: the sizes
            # declared (never negative) bound what the headers' reading decompresses too.
            members: list[tarfile.TarInfo] = []
            total = 0
            for member in archive:
                if not (member.isfile() or member.isdir()):
                    raise BundleError(f"{member.name} in {name} is not a plain file")
                total += member.size
                if member.size < 0 or total > MAX_BYTES or len(members) >= MAX_FILES:
                    raise BundleError(too_big)
                members.append(member)
            # "data": no absolute paths, no '..', no links, no devices (PEP 706).
            archive.extractall(into, members=members, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleError(f"{name} is not a readable .tar.gz ({exc})") from None


@dataclass
class Report:
    """What `feedback verify` found: the manifest, when it could be read, and each problem."""

    manifest: Manifest | None = None
    manifest_sha256: str | None = None
    key_id: str = ""  # the key it was checked with (minisign's hex id)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.manifest is not None and not self.problems


Then = Callable[[Path], list[str]]


def check(bundle: Path, key: PublicKey, *, then: Then | None = None) -> Report:
    """Check the signature and every file of a bundle (a folder or a .tar.gz); when they hold,
    ``then`` checks what is inside (a network summary's recomputation)."""
    with opened(bundle) as folder:
        report = check_folder(folder, key)
        if then is not None and report.ok:
            report.problems += then(folder)
        return report


@contextmanager
def opened(bundle: Path) -> Iterator[Path]:
    """A bundle as a folder: itself, or its .tar.gz unpacked (within limits) for the while."""
    if bundle.is_dir():
        yield bundle
        return
    if not bundle.is_file():
        raise BundleError(f"no bundle at {bundle}")
    with tempfile.TemporaryDirectory() as scratch:
        with bundle.open("rb") as packed:
            unpack(packed, Path(scratch), str(bundle))
        entries = list(Path(scratch).iterdir())
        yield entries[0] if len(entries) == 1 and entries[0].is_dir() else Path(scratch)


def check_folder(folder: Path, key: PublicKey) -> Report:
    report = Report(key_id=key.hex_id)
    try:
        raw = (folder / MANIFEST).read_bytes()
        signature = (folder / SIGNATURE).read_text()
    except OSError:
        report.problems.append(f"{MANIFEST} or {SIGNATURE} is missing")
        return report
    try:
        trusted = verify(raw, signature, key)
    except BadSignature as exc:
        report.problems.append(f"{MANIFEST}: {exc}")
        return report
    manifest = Manifest.parse(raw)
    if trusted != manifest.trusted_comment():
        report.problems.append(f"{MANIFEST}: the signed comment does not match its contents")
        return report
    report.manifest, report.manifest_sha256 = manifest, sha256(raw)
    for path, (digest, size) in sorted(manifest.files.items()):
        target = folder / path
        if not target.is_file():
            report.problems.append(f"{path}: missing")
            continue
        data = target.read_bytes()
        if len(data) != size or sha256(data) != digest:
            report.problems.append(f"{path}: changed (its SHA-256 or size differs)")
    listed = set(manifest.files) | {MANIFEST, SIGNATURE}
    for path in sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()):
        if path not in listed:
            report.problems.append(f"{path}: not in the manifest")
    return report


def remember(state: Path, report: Report, today: dt.date) -> None:
    """Compare a checked bundle with the last one accepted of its series (in ``state``), add
    what that shows to the report, and remember it when it moves the series on."""
    manifest, digest = report.manifest, report.manifest_sha256
    if manifest is None or digest is None:
        return
    # Per key too: another organisation's key cannot sign its way into this series' history.
    path = state / f"{report.key_id}.{manifest.organisation}.{manifest.series}.json"
    last: dict[str, Any] | None = json.loads(path.read_text()) if path.exists() else None
    problems, notes = _compare(manifest, digest, last)
    report.problems += problems
    report.notes += notes
    advanced = last is None or manifest.sequence > int(last["sequence"])
    newest, due = manifest.sequence, manifest.next_due
    if last is not None and not advanced:
        newest = int(last["sequence"])
        due = dt.date.fromisoformat(last["next_due"]) if last.get("next_due") else None
    if due is not None and today > due:
        report.problems.append(
            f"overdue: publication {newest + 1} of {manifest.series} was due on {due}"
        )
    if not problems and advanced:
        state.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(
                {
                    "sequence": manifest.sequence,
                    "manifest_sha256": digest,
                    "next_due": manifest.next_due.isoformat() if manifest.next_due else None,
                }
            )
        )


def _compare(
    manifest: Manifest, digest: str, last: Mapping[str, Any] | None
) -> tuple[Sequence[str], Sequence[str]]:
    if last is None:
        return [], [f"first publication of {manifest.series} seen here: remembered"]
    seen, seen_digest = int(last["sequence"]), str(last["manifest_sha256"])
    if manifest.sequence < seen:
        return [f"rollback: publication {manifest.sequence}, but {seen} was seen already"], []
    if manifest.sequence == seen:
        if digest != seen_digest:
            return [f"fork: another publication {seen} was seen, with a different manifest"], []
        return [], [f"publication {seen} was seen already"]
    if manifest.sequence > seen + 1:
        missing = ", ".join(str(n) for n in range(seen + 1, manifest.sequence))
        return [f"gap: publication(s) {missing} of {manifest.series} were never seen"], []
    if manifest.previous != seen_digest:
        return [f"fork: publication {manifest.sequence} does not follow the {seen} seen"], []
    return [], []
