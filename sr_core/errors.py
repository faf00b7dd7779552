"""The error of a bad hyperparameter: a ValueError that also says which field it is about, so that a
study file's error can name the table and field it came from ([space].channels, [train].epochs)."""
from __future__ import annotations


class ConfigError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
