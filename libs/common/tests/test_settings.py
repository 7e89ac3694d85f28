from pathlib import Path

import pytest
from pydantic import SecretStr
from pydantic_settings import SettingsError

from geogit.common.settings import GeogitSettings


class ServiceSettings(GeogitSettings):
    internal_secret: str = ""
    storage_token: SecretStr = SecretStr("")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in (
        "GEOGIT_ENVIRONMENT",
        "GEOGIT_SITE_NAME",
        "GEOGIT_INTERNAL_SECRET",
        "GEOGIT_INTERNAL_SECRET_FILE",
        "GEOGIT_STORAGE_TOKEN",
        "GEOGIT_STORAGE_TOKEN_FILE",
    ):
        monkeypatch.delenv(variable, raising=False)


def test_defaults() -> None:
    settings = GeogitSettings()
    assert (settings.environment, settings.log_level, settings.site_name) == (
        "development",
        "INFO",
        "primary",
    )


def test_reads_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEOGIT_SITE_NAME", "secondary-1")
    monkeypatch.setenv("SITE_NAME", "unprefixed-is-ignored")
    assert ServiceSettings().site_name == "secondary-1"


def test_file_overrides_variable_and_strips_trailing_newline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret_file = tmp_path / "internal_secret"
    secret_file.write_text("from-the-file\n")
    monkeypatch.setenv("GEOGIT_INTERNAL_SECRET", "from-the-variable")
    monkeypatch.setenv("GEOGIT_INTERNAL_SECRET_FILE", str(secret_file))
    assert ServiceSettings().internal_secret == "from-the-file"


def test_file_feeds_secret_str_fields(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret_file = tmp_path / "token"
    secret_file.write_text("s3cr3t-token\r\n")
    monkeypatch.setenv("GEOGIT_STORAGE_TOKEN_FILE", str(secret_file))
    assert ServiceSettings().storage_token.get_secret_value() == "s3cr3t-token"


def test_constructor_arguments_win_over_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret_file = tmp_path / "internal_secret"
    secret_file.write_text("from-the-file")
    monkeypatch.setenv("GEOGIT_INTERNAL_SECRET_FILE", str(secret_file))
    assert ServiceSettings(internal_secret="explicit").internal_secret == "explicit"


def test_missing_file_names_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GEOGIT_INTERNAL_SECRET_FILE", str(tmp_path / "absent"))
    with pytest.raises(SettingsError, match="GEOGIT_INTERNAL_SECRET_FILE: cannot read secret"):
        ServiceSettings()


def test_empty_file_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEOGIT_INTERNAL_SECRET_FILE", "")
    with pytest.raises(SettingsError, match="GEOGIT_INTERNAL_SECRET_FILE is set but empty"):
        ServiceSettings()


@pytest.mark.parametrize(
    "value", ["", "  ", "changeme", "CHANGEME", "secret", "development-secret"]
)
def test_placeholder_secret_refused_in_production(value: str) -> None:
    settings = ServiceSettings(environment="production", internal_secret=value)
    with pytest.raises(ValueError, match="GEOGIT_INTERNAL_SECRET is"):
        settings.check_secrets("internal_secret")


def test_every_bad_secret_is_named_at_once() -> None:
    settings = ServiceSettings(environment="production", internal_secret="changeme")
    with pytest.raises(ValueError) as caught:
        settings.check_secrets("internal_secret", "storage_token")
    assert "GEOGIT_INTERNAL_SECRET is a placeholder" in str(caught.value)
    assert "GEOGIT_STORAGE_TOKEN is empty" in str(caught.value)


def test_placeholders_allowed_in_development() -> None:
    ServiceSettings(internal_secret="changeme").check_secrets("internal_secret", "storage_token")


def test_real_secrets_accepted_in_production() -> None:
    settings = ServiceSettings(
        environment="production",
        internal_secret="a-long-random-value-1f0e9c",
        storage_token=SecretStr("another-random-value-77aa"),
    )
    settings.check_secrets("internal_secret", "storage_token")


def test_check_secrets_rejects_non_string_fields() -> None:
    class PortSettings(GeogitSettings):
        port: int = 8080

    with pytest.raises(TypeError, match="port is not a secret string field"):
        PortSettings(environment="production").check_secrets("port")
