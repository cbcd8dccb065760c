from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from feedback.config import SETTINGS, Settings
from feedback.errors import ConfigError, DataDirError
from feedback.secretfiles import load_or_create_secret, prepare_data_dir, resolve_secrets
from tests.cli import run_feedback

README = Path(__file__).resolve().parents[1] / "README.md"


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.database_url is None
    assert settings.port == 8000
    assert settings.host == "127.0.0.1"
    assert settings.public_url == "http://127.0.0.1:8000"
    assert settings.staff_url == "http://127.0.0.1:8000/staff"
    assert settings.statement_timeout_ms == 5000
    assert settings.session_secret is None


def test_values_come_from_prefixed_variables_only() -> None:
    settings = Settings.from_env(
        {
            "FEEDBACK_DATABASE_URL": "postgresql://app:pw@db.internal:5433/feedback",
            "FEEDBACK_PORT": "9000",
            "FEEDBACK_PUBLIC_URL": "https://survey.example.org/",
            "FEEDBACK_DEBUG": "yes",
            "FEEDBACK_STAFF_URL": "https://staff.example.org/staff/",
            "PORT": "1234",
            "DATABASE_URL": "postgresql://ignored@x/y",
        }
    )
    assert settings.database_url == "postgresql://app:pw@db.internal:5433/feedback"
    assert settings.port == 9000
    assert settings.public_url == "https://survey.example.org"
    assert settings.staff_url == "https://staff.example.org/staff"
    assert settings.debug is True


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DATABASE_URL", "mysql://root@localhost/x", "must start with postgresql://"),
        ("DATABASE_URL", "localhost:5432", "must start with postgresql://"),
        ("DATABASE_URL", "postgresql://u@host:port/db", "port that is not a number"),
        ("DATABASE_URL", "postgresql:///db", "names no host"),
        ("PORT", "eighty", "must be a whole number"),
        ("PORT", "70000", "between 1 and 65535"),
        ("DEBUG", "maybe", "true or false"),
        ("SESSION_SECRET", "short", "at least 32 characters"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL must be"),
        ("MIX_HOURS", "24", "between 1 and 20"),
        ("MIX_HOURS", "0", "between 1 and 20"),
    ],
)
def test_bad_values_say_what_to_fix(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        Settings.from_env({f"FEEDBACK_{name}": value})
    assert f"FEEDBACK_{name}" in str(raised.value)


def test_the_tests_cheap_key_wrapping_is_refused_in_production() -> None:
    assert Settings.from_env({"FEEDBACK_INSECURE_TEST_KDF": "true"}).insecure_test_kdf
    with pytest.raises(ConfigError, match="INSECURE_TEST_KDF is for tests"):
        Settings.from_env(
            {
                "FEEDBACK_INSECURE_TEST_KDF": "true",
                "FEEDBACK_PUBLIC_URL": "https://survey.example.org",
            }
        )
    assert Settings.from_env({}).mix_every.total_seconds() == 3600


def test_database_url_password_is_never_echoed() -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"FEEDBACK_DATABASE_URL": "postgresql://u:hunter2hunter2@h:x/db"})
    assert "hunter2" not in str(raised.value)


def test_socket_urls_are_accepted() -> None:
    url = "postgresql://postgres:@/feedback?host=/tmp/pg"
    assert Settings.from_env({"FEEDBACK_DATABASE_URL": url}).database_url == url


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = README.read_text()
    for variable in SETTINGS:
        assert f"`FEEDBACK_{variable.name}`" in readme, variable.name


def test_secrets_are_generated_once_with_owner_only_permissions(tmp_path: Path) -> None:
    first = load_or_create_secret(tmp_path, "session_secret")
    second = load_or_create_secret(tmp_path, "session_secret")
    path = tmp_path / "secrets" / "session_secret"
    assert first == second
    assert len(first) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_or_create_secret(tmp_path, "phone_hmac_key") != first


def test_secrets_from_settings_win_and_are_not_written(tmp_path: Path) -> None:
    given = "s" * 40
    settings = Settings.from_env(
        {
            "FEEDBACK_DATA_DIR": str(tmp_path / "data"),
            "FEEDBACK_SESSION_SECRET": given,
            "FEEDBACK_PHONE_HMAC_KEY": "p" * 40,
            "FEEDBACK_SMS_CODE_KEY": "c" * 40,
            "FEEDBACK_SMS_AUTH_TOKEN": "0123456789abcdef0123456789abcdef",
        }
    )
    resolved = resolve_secrets(settings)
    assert resolved.session == given.encode()
    assert resolved.phone_hmac == b"p" * 40
    assert resolved.sms_code_key == b"c" * 40
    assert resolved.sms_auth_token == b"0123456789abcdef0123456789abcdef"
    assert not (tmp_path / "data").exists()


def test_readable_secret_file_is_refused(tmp_path: Path) -> None:
    load_or_create_secret(tmp_path, "phone_hmac_key")
    path = tmp_path / "secrets" / "phone_hmac_key"
    os.chmod(path, 0o644)
    with pytest.raises(DataDirError, match="chmod 600"):
        load_or_create_secret(tmp_path, "phone_hmac_key")


def test_unwritable_data_directory_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(DataDirError, match="FEEDBACK_DATA_DIR") as raised:
        prepare_data_dir(blocker / "data")
    assert str(blocker / "data") in str(raised.value)


def test_feedback_settings_shows_every_setting_and_no_secret() -> None:
    shown = run_feedback(
        "settings", env={"FEEDBACK_SMS_CODE_KEY": "k" * 40, "FEEDBACK_MIX_HOURS": "6"}
    )
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    names = {v.name.lower() for v in SETTINGS}
    names = {"vonage" if n.startswith("vonage_") else n for n in names}
    assert names <= set(document), names - set(document)
    assert document["mix_hours"] == 6
    assert document["sms_code_key"] == "(set)"
    assert "kkkk" not in shown.stdout
