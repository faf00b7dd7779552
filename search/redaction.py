"""Redaction of passwords in storage and tracking URIs: never printed, logged, pickled or written to MLflow.

`mask` (its one home is sr_core.contract, which the report uses too) gives the form that may be shown or stored (`postgresql://user:***@host/db`). Objects that Tune
pickles into its experiment state (the searcher, the scheduler, the callback) keep the masked form and
`resolve` the real one from an environment variable the driver sets, so a password never reaches disk.
"""
from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

from sr_core.contract import MASK, mask  # noqa: F401 (mask is this module's API: one home, the contract)

#: Environment variables through which the driver hands the real URIs to its own Tune components.
STORAGE_ENV = "SR_SEARCH_OPTUNA_STORAGE"
TRACKING_ENV = "SR_SEARCH_TRACKING_URI"


def is_masked(url: str | None) -> bool:
    return bool(url) and f":{MASK}@" in url


def redact(text: str, *urls: str | None) -> str:
    """`text` with every password of `urls` (and any user:password@ in URLs) replaced by ***."""
    for url in urls:
        password = urlsplit(url).password if url and "://" in url else None
        if password:
            text = text.replace(password, MASK)
    return re.sub(r"(://[^:/@\s]+:)[^@/\s]+@", rf"\g<1>{MASK}@", text)


def resolve(public: str | None, env: str) -> str | None:
    """The real URL for a masked one, from the environment the driver set up; unmasked ones as they are."""
    if not is_masked(public):
        return public
    real = os.environ.get(env)
    if not real or mask(real) != public:
        raise RuntimeError(f"{public} needs its password: run from the sr-search driver, which sets {env}")
    return real


def publish(url: str | None, env: str) -> str | None:
    """Hand the real URL to this process's Tune components through `env`; return the masked form."""
    if url and is_masked(mask(url)):
        os.environ[env] = url
    return mask(url)
