"""Runs the test suite once per Keras backend, a few backends side by side.

One pytest process keeps about one CPU core busy (most tests are small and
spend their time in Python), so on a 2-core machine two backends at once
take about half the wall time of running them one after the other. Each
backend's output goes to `LOG_DIR/<backend>.log` and is printed whole when
that backend finishes; a line says when each starts and ends. The exit
status is 1 if any backend failed (or was stopped), else 0.

    python scripts/test_backends.py [--jobs 2] [--backends "tensorflow jax torch"]
                                    [--log-dir .test-logs] [--tests tests] [-- PYTEST_ARGS...]

`make test` calls this (`make test TEST_JOBS=1` runs one backend at a time).
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Longest first, so that the slowest backend never starts last (measured on
# a 2-core CPU: JAX about 1.5x the others, which compile less).
LONGEST_FIRST = ("jax", "tensorflow", "torch")


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Arguments after `--` go to pytest, e.g. -- -k etf -x.",
    )
    parser.add_argument("--jobs", type=int, default=2,
                        help="backends run at the same time (default: 2)")
    parser.add_argument("--backends", default="tensorflow jax torch",
                        help='space-separated backends (default: "tensorflow jax torch")')
    parser.add_argument("--log-dir", type=Path, default=REPO / ".test-logs",
                        help="where each backend's output is written (default: .test-logs)")
    parser.add_argument("--tests", default="tests",
                        help="what pytest collects (default: the whole suite, tests)")
    args, pytest_args = parser.parse_known_args(argv)
    if pytest_args[:1] == ["--"]:
        pytest_args = pytest_args[1:]
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1; got {args.jobs}")
    backends = args.backends.split()
    unknown = [b for b in backends if b not in LONGEST_FIRST]
    if unknown or not backends:
        parser.error(f"--backends must name some of {' '.join(LONGEST_FIRST)}; got {args.backends!r}")
    order = [b for b in LONGEST_FIRST if b in backends]
    return args, order, pytest_args


def main(argv=None):
    args, order, pytest_args = parse_args(sys.argv[1:] if argv is None else argv)
    args.log_dir.mkdir(parents=True, exist_ok=True)
    waiting, running, results = list(order), {}, {}
    start = time.monotonic()
    try:
        while waiting or running:
            while waiting and len(running) < args.jobs:
                backend = waiting.pop(0)
                log_path = args.log_dir / f"{backend}.log"
                log = open(log_path, "w")
                command = [sys.executable, "-m", "pytest", args.tests, *pytest_args]
                process = subprocess.Popen(
                    command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                    env={**os.environ, "KERAS_BACKEND": backend},
                )
                running[backend] = (process, log, log_path, time.monotonic())
                print(f"=== KERAS_BACKEND={backend}: started ({log_path})", flush=True)
            time.sleep(1)
            for backend, (process, log, log_path, began) in list(running.items()):
                if process.poll() is None:
                    continue
                log.close()
                del running[backend]
                results[backend] = process.returncode
                minutes = (time.monotonic() - began) / 60
                print(f"=== KERAS_BACKEND={backend}: {'passed' if process.returncode == 0 else 'FAILED'} "
                      f"in {minutes:.1f} min; its output:", flush=True)
                sys.stdout.write(log_path.read_text())
                sys.stdout.flush()
    except KeyboardInterrupt:
        for process, *_ in running.values():
            process.terminate()
        print("stopped", file=sys.stderr)
        return 1
    failed = [b for b in order if results.get(b) != 0]
    total = (time.monotonic() - start) / 60
    if failed:
        print(f"FAILED on: {' '.join(failed)} ({total:.1f} min in all)")
        return 1
    print(f"all backends passed: {' '.join(order)} ({total:.1f} min in all, {args.jobs} at a time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
