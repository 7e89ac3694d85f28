"""Runs the Alembic migrations shipped inside this package (`geogit-internal-api migrate`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Passed as an attribute, not an ini option: a password may hold '%', which ini escapes.
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Synchronous: env.py starts its own event loop, so call it from outside any loop."""
    command.upgrade(alembic_config(database_url), revision)
