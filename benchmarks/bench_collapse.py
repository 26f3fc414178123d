"""Benchmarks for nc_keras.collapse and the NeuralCollapse callback (issue 3).

Three parts, each printed as a table and appended, with date and machine, to
benchmarks/results/collapse.md:

1. metrics() on in-memory features (N=50,000, d=512, K=10) against (a) the
   public reference code's method, one d x d outer product per sample in a
   Python loop over PyTorch tensors, as that code does on a CPU (timed on a
   5,000-sample slice, scaled linearly), and (b) a
   plain vectorized float64 NumPy two-pass computation of the same metrics.
   Targets: >= 100x faster than (a), <= 1.5x the time of (b).
2. The callback's epoch-end cost against one `model.predict` pass over the
   same data, per backend (each in its own process). Target: <= 1.15x.
3. Streaming memory: K=1000, d=2048, 200,000 samples in batches, peak extra
   resident memory (fresh process). Target: <= 1 GB.

Timings are medians of `--repeats` runs, alternating the methods compared so
that machine load hits them alike.

    .venv/bin/python benchmarks/bench_collapse.py            # ~3-5 minutes
    .venv/bin/python benchmarks/bench_collapse.py --quick    # smoke test
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

from peak_memory import extra_peak_mb, reset_peak_rss  # noqa: E402 (benchmarks/)

RESULTS = REPO / "benchmarks" / "results" / "collapse.md"


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def medians(functions, repeats):
    """Median seconds of each function, run alternately `repeats` times."""
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, fn in functions.items():
            times[name].append(timed(fn))
    return {name: float(np.median(t)) for name, t in times.items()}


# --- part 1 -----------------------------------------------------------------


def per_sample_reference(H, y, W, b):
    """The public reference code's method, rewritten: PyTorch float32 on CPU,
    Python loops over samples, class sums then one d x d outer product per
    sample accumulated into Sigma_W (its NCC is not computed: it has none)."""
    import torch

    H, y = torch.as_tensor(H, dtype=torch.float32), torch.as_tensor(y)
    K = W.shape[0]
    sums = {}
    for i in range(len(y)):
        k = int(y[i])
        sums[k] = H[i].clone() if k not in sums else sums[k] + H[i]
    counts = torch.bincount(y, minlength=K)
    means = {k: sums[k] / counts[k] for k in sums}
    sigma_w = torch.zeros(H.shape[1], H.shape[1])
    for i in range(len(y)):
        diff = H[i] - means[int(y[i])]
        sigma_w += diff.unsqueeze(1) @ diff.unsqueeze(0)
    return sigma_w / len(y)


def plain_numpy(H, y, W, b):
    """Vectorized float64 NumPy, two passes: the fair fast baseline."""
    K = W.shape[0]
    M = np.stack([H[y == k].mean(axis=0) for k in range(K)])
    G = H.mean(axis=0)
    Hc = H - M[y]
    Sw = Hc.T @ Hc / len(y)
    Hbar = (M - G).T
    Sb = Hbar @ Hbar.T / K
    nc1 = np.trace(Sw @ np.linalg.pinv(Sb, hermitian=True)) / K
    E = (np.eye(K) - 1.0 / K) / np.sqrt(K - 1)
    nc2 = np.linalg.norm(W @ W.T / np.linalg.norm(W @ W.T) - E)
    nc3 = np.linalg.norm(W @ Hbar / np.linalg.norm(W @ Hbar) - E)
    nc4 = np.linalg.norm(b + W @ G)
    logits = H @ W.T + b
    distances = (M**2).sum(1) - 2 * H @ M.T
    ncc = np.mean(distances.argmin(1) != logits.argmax(1))
    return nc1, nc2, nc3, nc4, ncc


def later_metrics_seconds(H, y, W, b, repeats):
    """Seconds of the formulas beyond the paper's, from the statistics of H."""
    from nc_keras.collapse import InMemoryStatistics, formulas

    stats = InMemoryStatistics(W.shape[0], H, y, W, b)
    Hbar = formulas.centred_means(stats.means, formulas.global_mean(stats.counts, stats.means))
    variances = stats._class_within() * stats.scale**2 / stats.counts

    def later():
        formulas.cdnv(Hbar, variances)
        formulas.means_cos_std(Hbar)
        formulas.means_cos_max_gap(Hbar)
        formulas.gnc2(Hbar)
        formulas.unc3(W, Hbar)
        formulas.nc3_papyan(W, Hbar)

    return medians({"later": later}, 20 * repeats)["later"]


def part_metrics(repeats, quick):
    from nc_keras.collapse import metrics

    N, d, K, slice_n = (5000, 128, 10, 500) if quick else (50_000, 512, 10, 5000)
    rng = np.random.default_rng(0)
    y = rng.integers(0, K, N)
    H = rng.normal(size=(K, d))[y] * 3 + rng.normal(size=(N, d))
    W, b = rng.normal(size=(K, d)), rng.normal(size=K)
    ours = metrics(H, y, W, b)
    reference = plain_numpy(H, y, W, b)
    agree = max(abs(ours[k] - r) / abs(r) for k, r in zip(("nc1", "nc2", "nc3", "nc4"), reference))
    t = medians({
        "nc_keras": lambda: metrics(H, y, W, b),
        "numpy": lambda: plain_numpy(H, y, W, b),
    }, repeats)
    loops = medians({"loop": lambda: per_sample_reference(H[:slice_n], y[:slice_n], W, b)},
                    max(1, repeats // 3))["loop"] * N / slice_n
    later = later_metrics_seconds(H, y, W, b, repeats)
    rows = [
        {"method": "nc_keras.collapse.metrics", "seconds": t["nc_keras"], "ratio": 1.0},
        {"method": "(b) plain NumPy two-pass", "seconds": t["numpy"],
         "ratio": t["nc_keras"] / t["numpy"]},
        {"method": f"(a) per-sample torch loops ({slice_n} scaled x{N // slice_n})",
         "seconds": loops, "ratio": t["nc_keras"] / loops},
        {"method": "share of metrics(): the later metrics' formulas", "seconds": later,
         "ratio": later / t["nc_keras"]},
    ]
    notes = (
        f"N={N}, d={d}, K={K}, float64; medians of {repeats} alternated runs. "
        f"ratio = nc_keras time / method time. Speed-up over (a): "
        f"{loops / t['nc_keras']:.0f}x (target >= 100x); over (b): "
        f"{t['nc_keras'] / t['numpy']:.2f}x the time (target <= 1.5x). Largest "
        f"relative difference of NC1-NC4 vs (b): {agree:.1e}. The later metrics "
        f"(cdnv, means_cos_std, means_cos_max_gap, gnc2, unc3, nc3_papyan) from the "
        f"statistics: {100 * later / t['nc_keras']:.2f}% of metrics() (target <= 10%; "
        "their per-class traces come from the pass the trace ratio makes anyway)."
    )
    return "metrics() on in-memory features", rows, ["method", "seconds", "ratio"], notes


# --- part 2 -----------------------------------------------------------------


def callback_cost(repeats, quick):
    """Epoch-end cost of NeuralCollapse vs model.predict, current backend."""
    import keras

    from nc_keras.callbacks import NeuralCollapse

    keras.utils.set_random_seed(0)
    N, K = (512, 10) if quick else (2048, 10)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, 32, 32, 3)).astype("float32")
    y = rng.integers(0, K, N)
    inputs = keras.Input((32, 32, 3))
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(h)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Conv2D(256, 3, padding="same", activation="relu")(h)
    h = keras.layers.GlobalAveragePooling2D(name="features")(h)
    model = keras.Model(inputs, keras.layers.Dense(K, name="classifier")(h))
    batch = 256

    callbacks = {mode: NeuralCollapse((x, y), batch_size=batch, ncc=mode)
                 for mode in ("previous", "exact")}
    for callback in callbacks.values():
        callback.set_model(model)
        callback.set_params({"epochs": 10**6, "verbose": 0})
        callback.on_train_begin()
        callback.on_epoch_end(0, {})  # compiles; "previous" now has its means
    model.predict(x, batch_size=batch, verbose=0)  # compiles predict
    epoch = iter(range(1, 10**6))
    t = medians({
        "predict": lambda: model.predict(x, batch_size=batch, verbose=0),
        "previous": lambda: callbacks["previous"].on_epoch_end(next(epoch), {}),
        "exact": lambda: callbacks["exact"].on_epoch_end(next(epoch), {}),
    }, repeats)
    return {"backend": keras.backend.backend(), "N": N, **t}


def backend_child(backend, arguments):
    """The JSON last line of `python arguments...` run on `backend` in a fresh process."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, *arguments], env=env, capture_output=True, text=True)
    if out.returncode:
        print(out.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"{Path(arguments[0]).name} failed on {backend}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def part_callback(repeats, quick, backends):
    rows = []
    for backend in backends:
        r = backend_child(backend, [__file__, "--part", "callback-child", "--repeats",
                                    str(repeats)] + (["--quick"] if quick else []))
        rows.append({
            "backend": r["backend"], "predict_s": r["predict"],
            "callback_s": r["previous"], "ratio": r["previous"] / r["predict"],
            "exact_ncc_s": r["exact"], "exact_ratio": r["exact"] / r["predict"],
        })
    notes = (
        f"Conv net (3 conv layers, BatchNorm, d=256 after global pooling, K=10), "
        f"{r['N']} images 32x32x3, batch 256, CPU; medians of {repeats} "
        "alternated runs after warm-up. callback = NeuralCollapse epoch-end "
        "pass with the default ncc='previous' (one pass); exact_ncc = "
        "ncc='exact' (a second pass). ratio = callback / model.predict; "
        "target <= 1.15x."
    )
    columns = ["backend", "predict_s", "callback_s", "ratio", "exact_ncc_s", "exact_ratio"]
    return "NeuralCollapse epoch-end cost vs model.predict", rows, columns, notes


# --- part 3 -----------------------------------------------------------------


def memory_child(quick):
    from nc_keras.collapse import CollapseStatistics

    K, d, N, batch = (1000, 512, 20_000, 2048) if quick else (1000, 2048, 200_000, 2048)
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(K, d)).astype(np.float32)
    W = rng.normal(size=(K, d))
    base = reset_peak_rss()
    start = time.perf_counter()
    stats = CollapseStatistics(K)
    for offset in range(0, N, batch):
        n = min(batch, N - offset)
        labels = rng.integers(0, K, n)
        features = centres[labels] + rng.standard_normal((n, d), dtype=np.float32)
        stats.update(features, labels)
    result = stats.measure(W)
    seconds = time.perf_counter() - start
    return {"K": K, "d": d, "N": N, "batch": batch, "extra_mb": extra_peak_mb(base),
            "seconds": seconds, "nc1": result["nc1"]}


def part_memory(quick):
    command = [sys.executable, __file__, "--part", "memory-child"] + (["--quick"] if quick else [])
    out = subprocess.run(command, capture_output=True, text=True,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    if out.returncode:
        print(out.stderr[-3000:], file=sys.stderr)
        raise SystemExit("memory benchmark failed")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    rows = [{"K": r["K"], "d": r["d"], "samples": r["N"], "batch": r["batch"],
             "extra_peak_MB": r["extra_mb"], "seconds": r["seconds"]}]
    notes = (
        "CollapseStatistics.update over float32 batches generated on the fly, "
        "then measure(); extra peak resident memory = peak RSS (VmHWM, reset "
        "before streaming) minus the RSS before streaming, in a fresh process. "
        "Target <= 1024 MB."
    )
    return "Streaming memory", rows, list(rows[0]), notes


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", default="all",
                        choices=["all", "metrics", "callback", "memory",
                                 "callback-child", "memory-child"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backends", default="jax,tensorflow,torch")
    parser.add_argument("--quick", action="store_true", help="small sizes, no results file")
    parser.add_argument("--no-save", action="store_true", help="do not append to the results file")
    args = parser.parse_args()
    if args.part == "callback-child":
        print(json.dumps(callback_cost(args.repeats, args.quick)))
        return
    if args.part == "memory-child":
        print(json.dumps(memory_child(args.quick)))
        return

    from publish import publish_benchmark

    parts = []
    if args.part in ("all", "metrics"):
        parts.append(part_metrics(args.repeats, args.quick))
    if args.part in ("all", "callback"):
        parts.append(part_callback(args.repeats, args.quick, args.backends.split(",")))
    if args.part in ("all", "memory"):
        parts.append(part_memory(args.quick))
    formats = {key: ".3g" for key in ("seconds", "ratio", "predict_s", "callback_s",
                                      "exact_ncc_s", "exact_ratio")}
    formats["extra_peak_MB"] = ".0f"
    publish_benchmark(parts, RESULTS, formats, save=not (args.quick or args.no_save),
                      argv=["benchmarks/bench_collapse.py", *sys.argv[1:]])

if __name__ == "__main__":
    main()
