"""Redaction of passwords in storage and tracking URIs: never printed, logged, pickled or written to MLflow.

`mask` gives the form that may be shown or stored (`postgresql://user:***@host/db`). Objects that Tune
pickles into its experiment state (the searcher, the scheduler, the callback) keep the masked form and
`resolve` the real one from an environment variable the driver sets, so a password never reaches disk.
"""
from __future__ import annotations

import os
import re
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
#: Environment variables through which the driver hands the real URIs to its own Tune components.
STORAGE_ENV = "SR_SEARCH_OPTUNA_STORAGE"
TRACKING_ENV = "SR_SEARCH_TRACKING_URI"


def mask(url: str | None) -> str | None:
    """The URL with any password replaced by ***; URLs without one are returned unchanged."""
    if not url or "://" not in url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))


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
