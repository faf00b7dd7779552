"""The fault tests' seam, installed by the tests (tests/search/_driver.child_env puts this folder on
the child's PYTHONPATH, so Python imports it at start-up): with SR_SEARCH_PAUSE_AT=NAME, the process
prints `[test hook] paused at NAME` and waits, until killed, when it reaches that point
(search.milestones, raised as an audit event). Nothing of it is in the product."""
import os
import sys
import time

_AT = os.environ.get("SR_SEARCH_PAUSE_AT")
_EVENT = "sr_search.point"  # search.milestones.EVENT (not imported: this runs before the project can be)


def _hold(event: str, args: tuple) -> None:
    if event == _EVENT and args and args[0] == _AT:
        print(f"[test hook] paused at {_AT}", file=sys.stderr, flush=True)
        while True:  # until killed
            time.sleep(3600)


if _AT:
    sys.addaudithook(_hold)
