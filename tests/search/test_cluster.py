"""Which failures of joining a ray:// cluster `run` retries: the two ways Ray 2.60 reported the head's
client server process dying at start (ray-project/ray#63202), copied from runs on this machine, and
failures a retry cannot mend."""
from search.cluster import client_server_start_failed

PROXIER = "/venv/lib/python3.11/site-packages/ray/util/client/server/proxier.py"

# Seen in CI and here: the proxier polled the process after it died.
DIED = f"""Initialization failure from server:
Traceback (most recent call last):
  File "{PROXIER}", line 772, in Datapath
    raise RuntimeError(
RuntimeError: Starting Ray client server failed. See ray_client_server_23000.err for detailed logs.
"""

# Seen here: the proxier read the dead process's command line first.
ZOMBIE = f"""Initialization failure from server:
Traceback (most recent call last):
  File "{PROXIER}", line 765, in Datapath
    if not self.proxy_manager.start_specific_server(
  File "{PROXIER}", line 396, in start_specific_server
    cmd = psutil_proc.cmdline()
psutil.ZombieProcess: PID still exists but it's a zombie (pid=17131)
"""


def test_the_head_losing_the_client_server_process_is_retried():
    assert client_server_start_failed(DIED)
    assert client_server_start_failed(ZOMBIE)


def test_failures_a_retry_cannot_mend_are_not_retried():
    assert not client_server_start_failed("Initialization failure from server:\nCall to `ray.init()` on the "
                                          "server failed with: version mismatch")
    assert not client_server_start_failed("ray client connection timeout")
    assert not client_server_start_failed("Starting Ray client server failed")  # not from the server's reply
