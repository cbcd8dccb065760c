"""`feedback verify`: a publication bundle's signature and files, and with --state the series'
history: rollbacks, forks, gaps and overdue publications. Checked with the reference minisign
too."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from nacl.signing import SigningKey

from feedback.bundles import MANIFEST, MAX_BYTES, SIGNATURE, sha256, write_bundle
from feedback.minisign import PublicKey
from tests.cli import run_feedback
from tests.live import ROOT

TODAY = dt.datetime.now(dt.UTC).date()
FILES = {"summary.html": b"<!doctype html><title>Summary</title>", "data/figures.csv": b"a,b\n"}


class Series:
    """One organisation's series of publications, made with a key of the test's own."""

    def __init__(self, tmp_path: Path, key: SigningKey | None = None) -> None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.tmp_path = tmp_path
        self.key = key or SigningKey.generate()
        self.public = PublicKey.of(bytes(self.key.verify_key))
        self.key_file = tmp_path / "north.pub"
        self.key_file.write_text(self.public.file("north signing key"))
        self.last: str | None = None

    def publish(
        self, sequence: int, *, next_due: dt.date | None = None, files: dict[str, bytes] = FILES
    ) -> Path:
        folder = self.tmp_path / f"north-quarterly-{sequence}"
        write_bundle(
            folder,
            files,
            organisation="north",
            series="quarterly",
            sequence=sequence,
            issued=TODAY,
            next_due=next_due or TODAY + dt.timedelta(days=90),
            previous=self.last,
            signing_key=self.key,
        )
        self.last = sha256((folder / MANIFEST).read_bytes())
        return folder


def verify(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return run_feedback("verify", *(str(a) for a in args))


def test_a_bundle_verifies_and_each_changed_file_is_named(tmp_path: Path) -> None:
    series = Series(tmp_path)
    bundle = series.publish(1)
    good = verify(bundle, "--key", series.key_file)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "verified: the signature and all 2 files" in good.stdout
    # The reference tool checks the same manifest, and shows the chain in its trusted comment.
    checked = subprocess.run(
        [shutil.which("minisign") or "minisign", "-V", "-p", str(series.key_file),
         "-m", str(bundle / MANIFEST), "-x", str(bundle / SIGNATURE)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert "series=quarterly sequence=1 previous=none" in checked.stdout

    (bundle / "data" / "figures.csv").write_bytes(b"a,b\n1,2\n")
    (bundle / "extra.txt").write_text("slipped in")
    (bundle / "summary.html").unlink()
    bad = verify(bundle, "--key", series.key_file)
    assert bad.returncode == 1
    assert "FAILED data/figures.csv: changed" in bad.stdout
    assert "FAILED summary.html: missing" in bad.stdout
    assert "FAILED extra.txt: not in the manifest" in bad.stdout
    assert "verified" not in bad.stdout

    other = Series(tmp_path / "other")
    wrong_key = verify(series.publish(2), "--key", other.key_file)
    assert f"not with {other.public.hex_id}" in wrong_key.stdout
    manifest = series.publish(3)
    text = (manifest / MANIFEST).read_text().replace('"sequence": 3', '"sequence": 4')
    (manifest / MANIFEST).write_text(text)
    assert "was changed" in verify(manifest, "--key", series.key_file).stdout


def test_the_docs_check_with_pynacl_alone_works(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "funders.md").read_text()
    [block] = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    script = tmp_path / "check.py"
    script.write_text(block)
    series = Series(tmp_path)
    bundle = series.publish(1)

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(script), str(bundle), series.public.line()],
            capture_output=True,
            text=True,
            check=False,
        )

    checked = run()
    assert checked.returncode == 0, checked.stderr
    assert "verified: organisation=north series=quarterly sequence=1" in checked.stdout
    (bundle / "summary.html").write_bytes(b"changed")
    assert run().returncode != 0


def test_a_tar_gz_is_checked_and_one_that_escapes_its_folder_refused(tmp_path: Path) -> None:
    series = Series(tmp_path)
    bundle = series.publish(1)
    packed = tmp_path / "north-quarterly-1.tar.gz"
    with tarfile.open(packed, "w:gz") as archive:
        archive.add(bundle, arcname=bundle.name)
    assert verify(packed, "--key", series.key_file).returncode == 0
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as archive:
        archive.add(bundle / MANIFEST, arcname="../../outside.json")
    refused = verify(evil, "--key", series.key_file)
    assert refused.returncode == 1
    assert "error:" in refused.stderr
    assert not (tmp_path.parent / "outside.json").exists()


def test_the_state_reports_rollbacks_forks_gaps_and_overdue_publications(tmp_path: Path) -> None:
    series = Series(tmp_path)
    state = tmp_path / "state"
    first, second = series.publish(1), series.publish(2)
    assert "remembered" in verify(first, "--key", series.key_file, "--state", state).stdout
    assert verify(second, "--key", series.key_file, "--state", state).returncode == 0
    rollback = verify(first, "--key", series.key_file, "--state", state)
    assert "FAILED rollback: publication 1, but 2 was seen already" in rollback.stdout

    twin = Series(tmp_path / "twin", key=series.key)  # same key, another history
    twin.publish(1)
    other = {"summary.html": b"<!doctype html><title>Other figures</title>"}
    fork = verify(twin.publish(2, files=other), "--key", series.key_file, "--state", state)
    assert "FAILED fork: another publication 2 was seen" in fork.stdout

    series.publish(3)
    gap = verify(series.publish(4), "--key", series.key_file, "--state", state)
    assert "FAILED gap: publication(s) 3 of quarterly were never seen" in gap.stdout

    late = Series(tmp_path / "late")
    overdue_state = tmp_path / "late-state"
    promised = TODAY - dt.timedelta(days=5)
    verify(late.publish(1, next_due=promised), "--key", late.key_file, "--state", overdue_state)
    again = verify(tmp_path / "late" / "north-quarterly-1", "--key", late.key_file,
                   "--state", overdue_state)  # fmt: skip
    assert f"FAILED overdue: publication 2 of quarterly was due on {promised}" in again.stdout


def test_verify_needs_the_key_the_organisation_gave(tmp_path: Path) -> None:
    """A bundle may carry signing-key.pub, but a forger would replace it with their own: the
    check is against the key given with --key, or refused."""
    forger = Series(tmp_path / "forger")
    bundle = forger.publish(1, files={**FILES, "signing-key.pub": forger.public.file("x").encode()})
    refused = verify(bundle)
    assert refused.returncode != 0
    assert "--key" in refused.stderr
    genuine = Series(tmp_path / "genuine")
    assert verify(bundle, "--key", genuine.key_file).returncode == 1


def test_an_archive_that_would_fill_the_disk_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    """A few hundred kilobytes of .tar.gz that unpack to more than a publication can be."""
    bomb = tmp_path / "bomb.tar.gz"
    with tarfile.open(bomb, "w:gz") as archive:
        info = tarfile.TarInfo("north-quarterly-1/summary.html")
        info.size = MAX_BYTES + 1
        archive.addfile(info, io.BytesIO(bytes(info.size)))
    assert bomb.stat().st_size < 2 * 1024 * 1024
    series = Series(tmp_path / "keys")
    refused = verify(bomb, "--key", series.key_file)
    assert refused.returncode == 1
    assert "not a publication" in refused.stderr


def test_an_archive_whose_sizes_do_not_add_up_is_refused(tmp_path: Path) -> None:
    """A negative size (GNU headers allow one) would cancel a large file in the sum."""
    archive = tmp_path / "negative.tar.gz"
    with gzip.open(archive, "wb") as packed:
        info = tarfile.TarInfo("north-quarterly-1/a")
        info.size = -(1 << 20)
        packed.write(info.tobuf(format=tarfile.GNU_FORMAT))
        packed.write(bytes(1024))
    refused = verify(archive, "--key", Series(tmp_path / "keys").key_file)
    assert refused.returncode == 1
    assert "not a publication" in refused.stderr


def test_the_state_of_a_series_is_kept_per_key(tmp_path: Path) -> None:
    """Another organisation a funder also checks cannot sign its way into north's history."""
    north = Series(tmp_path / "north")
    state = tmp_path / "state"
    assert verify(north.publish(1), "--key", north.key_file, "--state", state).returncode == 0
    impostor = Series(tmp_path / "impostor")  # signs manifests that claim to be north's
    ahead = verify(impostor.publish(9), "--key", impostor.key_file, "--state", state)
    assert ahead.returncode == 0  # its own key, its own history
    assert verify(north.publish(2), "--key", north.key_file, "--state", state).returncode == 0
