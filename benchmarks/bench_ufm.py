"""Benchmark for nc_keras.ufm (issue 5, item 6): time to the exact optimum.

For (K, d, n) = (10, 20, 30) with lambdas 5e-3 and (100, 128, 50) with
lambdas 5e-4, each nc_keras method ("gd", "sgd", "adam", "lbfgs") on each
backend is timed to reach |f - f*| <= 1e-8 |f*| from the same random start,
against SciPy's L-BFGS-B (history 10) on a hand-written NumPy objective and
gradient, the plain baseline a researcher would write. (The larger size needs
smaller lambdas: with 5e-3 and K = 100 its optimum is the origin, K lW >=
sqrt(lW/(lH n)), which every method reaches in a few steps.)

Method. Each backend runs in its own process (Keras fixes its backend at
import), and the SciPy baseline is timed in that same process, alternating
with the nc_keras methods, so that machine load hits both alike; the table
gives medians of `--repeats` runs and the ratio to the baseline's median.
Compilation is excluded (one warm-up run each). gd, sgd and adam stop at the
first iterate with a small enough gap (the gap is read from the value each
step computes anyway); L-BFGS first finds the number of iterations k needed
(recording each iteration), then is timed running exactly k iterations in
one compiled call; SciPy likewise (k found with a callback, then timed with
maxiter=k). Results are appended to benchmarks/results/ufm.md.

    .venv/bin/python benchmarks/bench_ufm.py             # ~8 minutes here
    .venv/bin/python benchmarks/bench_ufm.py --quick     # small size only
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results" / "ufm.md"
SIZES = {"small": (10, 20, 30, 5e-3), "large": (100, 128, 50, 5e-4)}
TARGET = 1e-8


def numpy_objective(K, d, n, lam):
    """eq. (3) and its gradient in plain NumPy, over x = [vec W, vec H, b]."""
    N = K * n
    labels = np.repeat(np.arange(K), n)
    onehot = np.eye(K)[:, labels]

    def value_and_grad(x):
        W = x[: K * d].reshape(K, d)
        H = x[K * d : K * d + d * N].reshape(d, N)
        b = x[K * d + d * N :]
        Z = W @ H + b[:, None]
        Z = Z - Z.max(axis=0)
        E = np.exp(Z)
        S = E.sum(axis=0)
        loss = np.mean(np.log(S) - (onehot * Z).sum(axis=0))
        value = loss + lam / 2 * ((W**2).sum() + (H**2).sum() + (b**2).sum())
        G = (E / S - onehot) / N
        grad = np.concatenate(
            [(G @ H.T + lam * W).ravel(), (W.T @ G + lam * H).ravel(), G.sum(axis=1) + lam * b]
        )
        return value, grad

    return value_and_grad


def scipy_iterations(value_and_grad, x0, f_star):
    """L-BFGS-B iterations until the first iterate within TARGET of f*."""
    from scipy.optimize import minimize

    seen = {"k": 0}

    def callback(intermediate_result):
        seen["k"] += 1
        if abs(intermediate_result.fun - f_star) <= TARGET * abs(f_star):
            raise StopIteration

    minimize(value_and_grad, x0, jac=True, method="L-BFGS-B", callback=callback,
             options={"maxiter": 20000, "maxcor": 10, "gtol": 0, "ftol": 0})
    return seen["k"]


def scipy_run(value_and_grad, x0, iterations):
    from scipy.optimize import minimize

    result = minimize(value_and_grad, x0, jac=True, method="L-BFGS-B",
                      options={"maxiter": iterations, "maxcor": 10, "gtol": 0, "ftol": 0})
    return result.fun


def thread_environment(threads):
    """Environment pinning NumPy's BLAS and every backend to `threads` threads
    (0: leave the defaults). Multi-threaded BLAS and torch spin against each
    other and against other users on this shared 2-core machine (SciPy's
    small run took 0.22 s with 2 OpenBLAS threads, 0.018 s with 1)."""
    if not threads:
        return {}
    environment = {name: str(threads) for name in
                   ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if threads == 1:
        environment["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                    " --xla_cpu_multi_thread_eigen=false").strip()
    return environment


def worker(backend_name, sizes, repeats, threads, large_repeats=1):
    os.environ["KERAS_BACKEND"] = backend_name
    from nc_keras import ufm

    if threads and backend_name == "torch":
        import torch

        torch.set_num_threads(threads)
    if threads and backend_name == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)

    rows = []
    for size in sizes:
        K, d, n, lam = SIZES[size]
        lambdas = (lam, lam, lam)
        f_star = ufm.optimum(K, n, *lambdas).value
        W, H, b = ufm.random_start(K, d, n, seed=0)
        x0 = np.concatenate([W.ravel(), H.ravel(), b])
        numpy_vg = numpy_objective(K, d, n, lam)
        scipy_k = scipy_iterations(numpy_vg, x0, f_star)
        common = dict(seed=0, record_metrics=False)

        def solve_to_target(method):
            return ufm.solve(K, d, n, *lambdas, method=method, gap_tolerance=TARGET, **common)

        lbfgs_k = solve_to_target("lbfgs").steps  # also the warm-up (compiles)

        def timed_lbfgs():
            result = ufm.solve(K, d, n, *lambdas, method="lbfgs", steps=lbfgs_k,
                               record_every=lbfgs_k, gradient_tolerance=0.0, **common)
            assert abs(result.final["relative_gap"]) <= TARGET, result.final
            return result.seconds

        def timed_first_order(method):
            def run():
                result = solve_to_target(method)
                assert abs(result.final["relative_gap"]) <= TARGET, result.final
                run.steps = f"{result.steps}+{result.polish_steps}"
                return result.seconds
            return run

        def timed_scipy():
            start = time.perf_counter()
            value = scipy_run(numpy_vg, x0, scipy_k)
            elapsed = time.perf_counter() - start
            assert abs(value - f_star) <= TARGET * abs(f_star)
            return elapsed

        timed_lbfgs()  # compiles the loop for gradient_tolerance=0
        methods = {"lbfgs": timed_lbfgs}
        for method in ("gd", "sgd", "adam"):
            methods[method] = timed_first_order(method)
            ufm.solve(K, d, n, *lambdas, method=method, steps=2, polish_steps=2, **common)
        times = {name: [] for name in ["scipy", *methods]}
        for _ in range(large_repeats if size == "large" else repeats):
            times["scipy"].append(timed_scipy())
            for name, run in methods.items():
                times[name].append(run())
        baseline = float(np.median(times["scipy"]))
        steps = {"scipy": str(scipy_k), "lbfgs": str(lbfgs_k)}
        for name in ("gd", "sgd", "adam"):
            steps[name] = methods[name].steps
        for name, values in times.items():
            median = float(np.median(values))
            rows.append({
                "size": f"K={K} d={d} n={n} lam={lam:g}",
                "backend": "numpy" if name == "scipy" else backend_name,
                "method": "SciPy L-BFGS-B" if name == "scipy" else name,
                "iterations": steps[name],
                "median_s": median,
                "ratio": median / baseline,
            })
    print("ROWS " + json.dumps(rows))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"])
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=["small", "large"])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs, small size")
    parser.add_argument("--large-repeats", type=int, default=1,
                        help="timed runs, large size (each takes 5-40 s per method)")
    parser.add_argument("--quick", action="store_true", help="small size only, 1 repeat")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="threads for NumPy's BLAS and every backend alike (0: their defaults); "
        "see thread_environment",
    )
    parser.add_argument("--no-save", action="store_true", help="print only")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.repeats = ["small"], 1
    if args.worker:
        return worker(args.worker, args.sizes, args.repeats, args.threads, args.large_repeats)

    from publish import publish_benchmark

    rows = []
    for backend_name in args.backends:
        print(f"running {backend_name} ...", flush=True)
        command = [sys.executable, __file__, "--worker", backend_name, "--repeats",
                   str(args.repeats), "--large-repeats", str(args.large_repeats),
                   "--threads", str(args.threads),
                   "--sizes", *args.sizes]
        out = subprocess.run(command, capture_output=True, text=True,
                             env=dict(os.environ, KERAS_BACKEND=backend_name,
                                      **thread_environment(args.threads)))
        lines = [line for line in out.stdout.splitlines() if line.startswith("ROWS ")]
        if out.returncode != 0 or not lines:
            print(out.stdout[-3000:], out.stderr[-3000:], file=sys.stderr)
            return 1
        rows += json.loads(lines[-1][5:])
    rows.sort(key=lambda row: (row["size"], row["method"] != "SciPy L-BFGS-B"))
    columns = ["size", "backend", "method", "iterations", ("median_s", "median s"), ("ratio", "x SciPy")]
    notes = (f"Time to |f - f*| <= 1e-8 |f*| from the same random start, medians of "
             f"{args.repeats} runs (large size: {args.large_repeats}); 'x SciPy' is "
             "relative to SciPy L-BFGS-B timed in the same process. sgd/adam "
             "iterations: minibatch steps + full-batch polish. "
             f"Threads (BLAS and backends): {args.threads or 'defaults'}.")
    publish_benchmark(
        [("UFM: time to the exact optimum (bench_ufm.py)", rows, columns, notes)],
        RESULTS,
        {"median_s": ".3f", "ratio": ".2f"},
        save=not args.no_save,
        argv=["benchmarks/bench_ufm.py", *sys.argv[1:]],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
