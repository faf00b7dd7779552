"""Ctrl-C and SIGTERM, honestly: the first one stops the study cleanly, a second one stops it at once.

While Ray Tune runs (`tune_running`), the first signal is forwarded to Tune's own graceful stop
(SIGUSR1: Tune saves its experiment state one last time and returns from `fit()`), and remembered so
the driver can tag what was running as `interrupted` and exit 130 (SIGINT) or 143 (SIGTERM). Outside
Tune (data preparation, the report), the first signal raises `Interrupted` where the driver is. A
second signal exits the process immediately with the same code; what was running is then repaired to
`interrupted` by the next `--resume` or `sr-search status`, as after kill -9.

Ray Tune installs its own SIGINT handler in `fit()` and prints a `Tuner.restore(...)` hint; the driver
sets TUNE_DISABLE_SIGINT_HANDLER=1 so that this module is the only one listening, and filters the hint
(our message names the `sr-search run ... --resume` command instead).
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Interrupted(BaseException):
    """The user stopped the study (Ctrl-C or SIGTERM). A BaseException, like KeyboardInterrupt."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.signum]


class InterruptGuard:
    def __init__(self) -> None:
        self.signum: int | None = None
        self.tune_running = False

    @property
    def exit_code(self) -> int | None:
        return EXIT_CODES[self.signum] if self.signum is not None else None

    def handle(self, signum: int, frame) -> None:
        if self.signum is not None:  # the second signal: stop now
            print(f"\n{signal.Signals(signum).name} again: stopping now; `--resume` repairs the rest.",
                  file=sys.stderr, flush=True)
            os._exit(EXIT_CODES[self.signum])
        self.signum = signum
        # Forward only once Tune listens on SIGUSR1 (it installs that handler a moment into fit()):
        # before that, SIGUSR1's default action would kill the process without saving anything.
        if not (self.tune_running and callable(signal.getsignal(signal.SIGUSR1))):
            raise Interrupted(signum)
        print(f"\n{signal.Signals(signum).name}: stopping the running trials and saving the study "
              "(press Ctrl-C again to stop at once) ...", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGUSR1)  # Tune's own graceful stop

    def install(self) -> None:
        """(Re)take SIGINT and SIGTERM: `ray.init` installs its own SIGTERM handler in the driver."""
        for s in EXIT_CODES:
            signal.signal(s, self.handle)

    @contextlib.contextmanager
    def tune(self) -> Iterator[None]:
        """Around `Tuner.fit()`: signals become Tune's graceful stop instead of an exception."""
        self.tune_running = True
        try:
            yield
        finally:
            self.tune_running = False
        if self.signum is not None:
            raise Interrupted(self.signum)


class _DropRestoreHint(logging.Filter):
    """Tune's own messages about stopping and restoring, which name commands our users don't run."""
    NOISE = ("Tuner.restore(", "Stop signal received", "Failed to fetch metrics for")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(noise in message for noise in self.NOISE)


@contextlib.contextmanager
def interrupt_guard() -> Iterator[InterruptGuard]:
    """Install the SIGINT/SIGTERM handlers for the life of a `run` (main thread only)."""
    guard = InterruptGuard()
    previous = {s: signal.signal(s, guard.handle) for s in EXIT_CODES}
    previous[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    hint_filter = _DropRestoreHint()
    loggers = [logging.getLogger(name) for name in ("ray.tune.tune", "ray.tune.analysis.experiment_analysis")]
    for logger in loggers:
        logger.addFilter(hint_filter)
    try:
        yield guard
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for logger in loggers:
            logger.removeFilter(hint_filter)
