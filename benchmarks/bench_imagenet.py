"""ImageNet-size collapse measurement: K=1000, d=2048, N up to 1.28 million.

Issue 7, item 2. ImageNet's 1.28 million training features of width 2048
take 10 GB in float32, so NC1-NC4 must be measured in one streaming pass of
`nc_keras.collapse.CollapseStatistics` in bounded memory. Three parts, each
printed as a table and appended, with date and machine, to
benchmarks/results/imagenet.md:

1. **Linear in N.** Stream N synthetic features (K=1000 Gaussian clusters,
   d=2048, float32, in chunks of 2048 rows, as the library's measurement
   pass groups model outputs) for several N, each in a fresh process, then
   `measure()`: wall time and extra peak resident memory. A least-squares
   line t = a + b N through the points is extrapolated to N = 1,281,167
   (ImageNet-1k's training set); memory must not grow with N.
2. **Streaming against in-memory.** The streaming pass keeps the d x d
   within-class scatter, one symmetric (B x d)^T (B x d) product per chunk:
   O(N d^2) work whatever K is, in O(Kd + d^2) memory. With every feature in
   memory, `collapse.metrics` needs no d x d product for NC1-NC4 (NC1 needs
   Sigma_W only in the (K-1)-dim span of the class means, O(N d K)), but the
   features' numerical and effective ranks need their d x d covariance, and
   it holds O(N d). The table times both for K = 10, 100, 1000 at d=2048.
3. **Tiling.** The same stream in chunks of 64 to 4096 rows: small chunks
   leave BLAS idle, which is why the library gathers model outputs into
   chunks of about 16 MB (`nc_keras.collapse.CHUNK_BYTES`) before updating.

Synthetic features are generated before the clock starts (a pool of chunks,
reused), so the times are those of the statistics alone.

    .venv/bin/python benchmarks/bench_imagenet.py           # ~4 minutes on 2 cores
    .venv/bin/python benchmarks/bench_imagenet.py --quick   # smoke run, no results file
"""

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from peak_memory import extra_peak_mb, reset_peak_rss  # noqa: E402 (benchmarks/)

RESULTS = REPO / "benchmarks" / "results" / "imagenet.md"
IMAGENET_TRAIN = 1_281_167
K, D, CHUNK = 1000, 2048, 2048


def feature_pool(num_classes, dim, rows, chunks=4, seed=0):
    """`chunks` float32 (rows, dim) feature chunks with labels, clustered."""
    rng = np.random.default_rng(seed)
    centres = 3.0 * rng.standard_normal((num_classes, dim), dtype=np.float32)
    # Balanced over the pool, so no class is ever empty (that would skip NC1).
    labels = rng.permutation(np.arange(chunks * rows) % num_classes).reshape(chunks, rows)
    return [(centres[y] + rng.standard_normal((rows, dim), dtype=np.float32), y)
            for y in labels]


def stream(num_classes, dim, num_samples, rows, pool, W):
    """Streams `num_samples` features in chunks of `rows`; returns (seconds, nc1)."""
    from nc_keras.collapse import CollapseStatistics

    start = time.perf_counter()
    stats = CollapseStatistics(num_classes, dim)
    for i, offset in enumerate(range(0, num_samples, rows)):
        features, labels = pool[i % len(pool)]
        n = min(rows, num_samples - offset)
        stats.update(features[:n], labels[:n])
    result = stats.measure(W)
    return time.perf_counter() - start, result["nc1"]


def scale_child(num_samples):
    """One point of part 1, in a fresh process so that VmHWM is its own."""
    # Imported before the peak is reset: importing nc_keras loads Keras and
    # its backend (hundreds of MB), which is not the statistics' memory.
    import nc_keras.collapse  # noqa: F401

    pool = feature_pool(K, D, CHUNK)
    W = np.random.default_rng(1).standard_normal((K, D))
    base = reset_peak_rss()
    seconds, nc1 = stream(K, D, num_samples, CHUNK, pool, W)
    return {"samples": num_samples, "seconds": seconds,
            "extra_peak_MB": extra_peak_mb(base), "nc1": nc1}


def part_scale(sizes):
    rows = []
    for n in sizes:
        command = [sys.executable, __file__, "--part", "scale-child", "--samples", str(n)]
        out = subprocess.run(command, capture_output=True, text=True)
        if out.returncode:
            print(out.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"streaming {n} samples failed")
        row = json.loads(out.stdout.strip().splitlines()[-1])
        row["samples_per_s"] = n / row["seconds"]
        rows.append(row)
        print(f"  N={n:,}: {row['seconds']:.1f} s, {row['extra_peak_MB']:.0f} MB", flush=True)
    n = np.array([r["samples"] for r in rows], dtype=float)
    t = np.array([r["seconds"] for r in rows])
    slope, intercept = np.polyfit(n, t, 1)
    worst = float(np.max(np.abs(intercept + slope * n - t) / t))
    predicted = intercept + slope * IMAGENET_TRAIN
    rows.append({"samples": IMAGENET_TRAIN, "seconds": predicted,
                 "samples_per_s": IMAGENET_TRAIN / predicted,
                 "extra_peak_MB": None, "nc1": None, "note": "linear fit"})
    statistics_mb = 8 * (K * D + D * D) / 2**20
    scratch_mb = 8 * 2 * (CHUNK + min(K, CHUNK)) * D / 2**20
    notes = (
        f"K={K}, d={D}, float32 features in chunks of {CHUNK} rows, statistics in "
        f"float64; each N in a fresh process. Linear fit t = {intercept:.2f} s + "
        f"N x {slope * 1e6:.1f} us (largest relative residual {worst:.1%}); the last "
        f"row is its extrapolation to ImageNet-1k's {IMAGENET_TRAIN:,} training "
        "features. extra_peak_MB = peak RSS (VmHWM, reset before streaming) minus "
        "the RSS before; it does not grow with N. It holds 8 bytes x (Kd class means "
        f"+ d^2 scatter) = {statistics_mb:.0f} MB of statistics, 8 bytes x 2 x "
        f"(B + min(K, B)) x d = {scratch_mb:.0f} MB of update scratch kept between "
        f"chunks of B = {CHUNK} rows, and measure()'s d x d and tile temporaries."
    )
    columns = ["samples", "seconds", "samples_per_s", "extra_peak_MB", "note"]
    return "Streaming K=1000, d=2048: time linear in N, memory bounded", rows, columns, notes


def part_products(num_samples, repeats):
    from nc_keras.collapse import metrics

    rows = []
    for num_classes in (10, 100, 1000):
        pool = feature_pool(num_classes, D, CHUNK)
        W = np.random.default_rng(1).standard_normal((num_classes, D))
        chunks = -(-num_samples // CHUNK)
        features = np.concatenate([pool[i % len(pool)][0] for i in range(chunks)])[:num_samples]
        labels = np.concatenate([pool[i % len(pool)][1] for i in range(chunks)])[:num_samples]
        streamed, in_memory = [], []
        for _ in range(repeats):
            streamed.append(stream(num_classes, D, num_samples, CHUNK, pool, W)[0])
            start = time.perf_counter()
            metrics(features, labels, W)
            in_memory.append(time.perf_counter() - start)
        s, m = float(np.median(streamed)), float(np.median(in_memory))
        rows.append({"K": num_classes, "streaming_s": s, "in_memory_s": m,
                     "ratio": s / m,
                     "in_memory_at_ImageNet_GB": IMAGENET_TRAIN * D * 4 / 1e9})
    notes = (
        f"d={D}, N={num_samples:,}, medians of {repeats} alternated runs. streaming = "
        "CollapseStatistics.update in chunks of 2048 + measure() (d x d scatter, "
        "O(N d^2)); in_memory = collapse.metrics on all features at once (NC1-NC4 "
        "need no d x d product, O(N d K), but the features' ranks need their d x d "
        "covariance, O(N d^2), and the exact NCC a second pass). ratio = "
        "streaming / in_memory; the last column is what in_memory would hold at "
        "ImageNet-1k (float32 features): the streaming pass is both faster and "
        "bounded in memory."
    )
    columns = ["K", "streaming_s", "in_memory_s", "ratio", "in_memory_at_ImageNet_GB"]
    return "Where the d x d scatter costs: streaming vs in-memory", rows, columns, notes


def part_tiling(num_samples, repeats):
    W = np.random.default_rng(1).standard_normal((K, D))
    sizes = (64, 256, 1024, 2048, 4096)
    pools = {rows: feature_pool(K, D, rows, chunks=max(1, 8192 // rows)) for rows in sizes}
    times = {rows: [] for rows in sizes}
    for _ in range(repeats):
        for rows in sizes:
            times[rows].append(stream(K, D, num_samples, rows, pools[rows], W)[0])
    best = min(np.median(t) for t in times.values())
    rows = [{"chunk_rows": r, "seconds": float(np.median(t)),
             "samples_per_s": num_samples / float(np.median(t)),
             "x_best_time": float(np.median(t)) / best} for r, t in times.items()]
    notes = (
        f"K={K}, d={D}, N={num_samples:,}, medians of {repeats} alternated runs; "
        "x_best_time = time / the best chunk size's time. The library's measurement pass gathers "
        "model outputs into chunks of about 16 MB (2048 rows at d=2048, float32) "
        "before updating, whatever the data's batch size."
    )
    return "Tiling: chunk size of the streaming update", rows, list(rows[0]), notes


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", default="all",
                        choices=["all", "scale", "products", "tiling", "scale-child"])
    parser.add_argument("--samples", type=int, default=None,
                        help="scale-child only: how many features to stream")
    parser.add_argument("--sizes", default="25000,50000,100000,200000",
                        help="part 1: the N to measure, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small sizes, no results file")
    parser.add_argument("--no-save", action="store_true", help="do not append to the results file")
    args = parser.parse_args()
    if args.part == "scale-child":
        print(json.dumps(scale_child(args.samples)))
        return

    from publish import publish_benchmark

    sizes = [int(s) for s in args.sizes.split(",")]
    small = 8192 if args.quick else 32768
    if args.quick:
        sizes, args.repeats = [4096, 8192, 16384], 1
        # So few samples leave some of the 1000 classes empty, which warns.
        warnings.simplefilter("ignore", RuntimeWarning)
    parts = []
    if args.part in ("all", "scale"):
        parts.append(part_scale(sizes))
    if args.part in ("all", "products"):
        parts.append(part_products(small, args.repeats))
    if args.part in ("all", "tiling"):
        parts.append(part_tiling(small, args.repeats))
    formats = {"seconds": ".3g", "streaming_s": ".3g", "in_memory_s": ".3g", "ratio": ".2f",
               "x_best_time": ".2f", "samples_per_s": ",.0f", "extra_peak_MB": ".0f",
               "samples": ",", "in_memory_at_ImageNet_GB": ".1f"}
    publish_benchmark(parts, RESULTS, formats, save=not (args.quick or args.no_save),
                      argv=["benchmarks/bench_imagenet.py", *sys.argv[1:]])

if __name__ == "__main__":
    main()
