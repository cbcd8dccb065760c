"""Errors that reach a person, each saying what to do next.

    FeedbackError
     ├── ConfigError            a setting is missing or malformed
     ├── DataDirError           the data directory cannot be created or written
     ├── DatabaseUnavailable    the database cannot be reached
     ├── MigrationError         the schema cannot be brought up to date safely
     │    ├── BadMigrationName
     │    ├── EditedMigration
     │    └── UnknownMigration
     └── PortInUse              the web server cannot listen

The CLI prints ``str(error)`` as one line and exits non-zero; web handlers turn the ones
they expect into pages.
"""

from __future__ import annotations


class FeedbackError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(FeedbackError):
    pass


class DataDirError(FeedbackError):
    pass


class DatabaseUnavailable(FeedbackError):
    pass


class MigrationError(FeedbackError):
    pass


class BadMigrationName(MigrationError):
    pass


class EditedMigration(MigrationError):
    pass


class UnknownMigration(MigrationError):
    pass


class PortInUse(FeedbackError):
    pass
