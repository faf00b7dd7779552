"""The errors a user can cause and fix, importable without Ray, Optuna or MLflow (the CLI maps them
to exit code 2 with one message naming the file, field or service)."""
from __future__ import annotations


class StudyError(ValueError):
    """A study file or flag a user can fix: the message names the file and the field."""


class TrackingError(StudyError):
    """The tracking store cannot be used (unreachable, refused, unknown scheme)."""
