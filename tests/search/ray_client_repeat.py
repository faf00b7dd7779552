"""Run a tiny study through ray:// N times, each against a fresh two-node cluster, and count how often the
head's Ray Client server died at start (ray-project/ray#63202) and `run` had to connect again.

    python tests/search/ray_client_repeat.py 30

Not a test (pytest does not collect it): it takes about 30 s a run. It is how the retry in
search.run.cluster.ray_session was measured (BENCHMARKS.md, "Ray Client")."""
import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1])]  # _driver, _study_toml
from _driver import child_env, run_cli, write_study  # noqa: E402
from _services import ray_cluster  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=int, nargs="?", default=10)
    runs = parser.parse_args().runs
    root = Path(tempfile.mkdtemp(prefix="sr-client-"))
    retried = failed = 0
    try:
        for i in range(runs):
            tmp = root / f"c{i}"
            tmp.mkdir()
            with ray_cluster(tmp, head_cpus=2, worker_cpus=2) as cluster:
                study = write_study(tmp, "client", blocks=(0,), lrs=(1e-3, 2e-3), epochs=2, cpus=1, concurrent=2)
                t0 = time.monotonic()
                code, out = run_cli(["run", "--study", str(study), "--workdir", str(tmp / "w"), "--tflops", "1",
                                     "--address", cluster["client"], "--no-report"], child_env(tmp))
                retries = sum("connecting again" in line for line in out.splitlines())
                retried += retries > 0
                failed += code != 0
                print(f"run {i + 1}/{runs}: exit {code}, {retries} retr{'y' if retries == 1 else 'ies'}, "
                      f"{time.monotonic() - t0:.1f} s", flush=True)
                if code:
                    print(out[-2000:])
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{runs} runs: {retried} needed a second connection, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
