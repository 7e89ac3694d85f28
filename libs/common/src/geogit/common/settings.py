"""Settings every geogit service builds on.

Each service subclasses `GeogitSettings` and constructs it in its factory (never at import
time), so tests can build several sites' settings in one process. Secrets come from files in
production (`GEOGIT_FOO_FILE`, as Kubernetes mounts them), so the base class reads those for
every field; and it refuses to run outside development with a secret nobody set.
"""

import os
from typing import Any, Literal

from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

PLACEHOLDER_SECRETS = frozenset(
    {
        "changeme",
        "change-me",
        "changethis",
        "secret",
        "development-secret",
        "dev-secret",
        "password",
    }
)
"""Values copied from examples and dev configs; compared case-insensitively."""


def _env_name(settings_cls: type[BaseSettings], field_name: str) -> str:
    return f"{settings_cls.model_config.get('env_prefix', '')}{field_name}".upper()


class SecretFileSource(PydanticBaseSettingsSource):
    """Reads field `foo` from the file named by `GEOGIT_FOO_FILE`.

    It sits just above the environment in priority, so a mounted secret wins over a plain
    variable left behind in a manifest, while explicit constructor arguments (tests) still win.
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        variable = f"{_env_name(self.settings_cls, field_name)}_FILE"
        path = os.environ.get(variable)
        if path is None:
            return None, field_name, False
        if not path:
            raise SettingsError(f"{variable} is set but empty; it must name a file")
        try:
            with open(path, encoding="utf-8") as secret_file:
                value = secret_file.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(f"{variable}: cannot read secret file {path!r}: {exc}") from exc
        return value.rstrip("\r\n"), field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for field_name, field in self.settings_cls.model_fields.items():
            value, key, is_complex = self.get_field_value(field, field_name)
            if value is not None:
                values[key] = self.prepare_field_value(field_name, field, value, is_complex)
        return values


class GeogitSettings(BaseSettings):
    """Base for every service's settings: `GEOGIT_*` variables, `*_FILE` secrets."""

    model_config = SettingsConfigDict(env_prefix="GEOGIT_", extra="ignore")

    environment: Literal["development", "production"] = "development"
    log_level: str = "INFO"
    site_name: str = "primary"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            SecretFileSource(settings_cls),
            env_settings,
            dotenv_settings,
            file_secret_settings,
        )

    def check_secrets(self, *names: str) -> None:
        """Refuse empty or placeholder secrets unless this is a development site.

        Development keeps working with the dev stack's well-known values; anywhere else such a
        value would let anyone who read the docs forge tokens. Every offending variable is named
        in one error so an operator fixes them all in one go.
        """
        if self.environment == "development":
            return
        problems = []
        for name in names:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if not isinstance(value, str):
                raise TypeError(f"{name} is not a secret string field")
            variable = _env_name(type(self), name)
            if not value.strip():
                problems.append(f"{variable} is empty")
            elif value.strip().lower() in PLACEHOLDER_SECRETS:
                problems.append(f"{variable} is a placeholder value")
        if problems:
            raise ValueError(
                "; ".join(problems) + f" (environment={self.environment}: set real secrets,"
                " for example through the matching *_FILE variables)"
            )
