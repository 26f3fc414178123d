"""Neural collapse at vocabulary scale: K up to 50,257 classes, d up to 1,024.

Two parts, each printed as a table and appended, with date and machine, to
benchmarks/results/vocab.md:

1. `CollapseStatistics.update`, one batch of 4,096 float32 rows with labels
   drawn uniformly from K classes, against its floor, the float64 d x d
   product of the same rows (rows^T rows). Target: <= 3x at K = 50,257,
   d = 256. Beside it, the same batch accumulated by
   rhubarbwu/neural-collapse (MeanAccumulator, then VarNormAccumulator and
   CovarAccumulator against those means: its two passes).
2. `CollapseStatistics.measure` (every metric; all K classes seen) against
   its floor, one float64 K x K x d Gram product of the K x d means, timed
   tile by tile in the same run (no K x K array); peak extra resident
   memory of `measure` (RSS high-water mark reset before it). Targets:
   <= 3x the floor at K = 50,257, d = 1,024; peak <= the 256 MiB tile
   budget. Beside it, rhubarbwu/neural-collapse's `variability_cdnv` (one
   metric, the CDNV) with its tiles of 1,024 classes where it fits in
   memory and time here (its K x K grid is float32; each tile forms a
   t x t x d difference tensor).

rhubarbwu/neural-collapse is read from a checkout given with
--rhubarbwu PATH (its package folder's parent; e.g. `git clone
https://github.com/rhubarbwu/neural-collapse`), imported from there, never
copied into this repository; without it its columns are empty.

    .venv/bin/python benchmarks/bench_vocab.py --rhubarbwu /tmp/neural-collapse   # ~15 minutes
    .venv/bin/python benchmarks/bench_vocab.py --quick                            # smoke test
"""

import argparse
import gc
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from peak_memory import extra_peak_mb, reset_peak_rss  # noqa: E402 (benchmarks/)

RESULTS = REPO / "benchmarks" / "results" / "vocab.md"
SIZES = [(1000, 256), (1000, 1024), (10000, 256), (10000, 1024), (50257, 256), (50257, 1024)]
QUICK_SIZES = [(500, 64), (2000, 64)]
BATCH = 4096
# rhubarbwu's CDNV is run where its K x K x d work stays below this many
# element operations (about a minute of PyTorch on a 2-core CPU).
PEER_CDNV_LIMIT = 3e10


def median_seconds(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def batch(rng, K, d):
    return (rng.normal(size=(BATCH, d)).astype(np.float32),
            rng.integers(0, K, size=BATCH))


def peer_module(path):
    if path is None:
        return None
    sys.path.insert(0, str(path))
    import neural_collapse  # noqa: F401 - rhubarbwu's package, from the given checkout

    return sys.modules["neural_collapse"]


def part_update(sizes, repeats, peer):
    from nc_keras.collapse import CollapseStatistics

    rows = []
    for K, d in sizes:
        rng = np.random.default_rng(0)
        h, y = batch(rng, K, d)
        stats = CollapseStatistics(K, d)
        stats.update(h, y)  # the first batch sets the frame
        floor_rows = h.astype(np.float64)
        update = median_seconds(lambda: stats.update(h, y), repeats)
        floor = median_seconds(lambda: floor_rows.T @ floor_rows, repeats)
        row = {"K": K, "d": d, "present": int(np.unique(y).size), "update_s": update,
               "floor_s": floor, "ratio": update / floor, "samples_per_s": BATCH / update,
               "peer_update_s": float("nan")}
        if peer is not None:
            row["peer_update_s"] = peer_update_seconds(peer, K, d, h, y, repeats)
        rows.append(row)
        print(row, flush=True)
    notes = (f"One batch of {BATCH} float32 rows, labels uniform over K (present = classes "
             "in the batch); medians of alternated runs. floor = float64 rows^T rows (d x d) "
             "of the same rows; ratio = update / floor, target <= 3 at K = 50,257, d = 256 "
             "(8.4 before the per-batch cost followed the classes present). peer = "
             "rhubarbwu/neural-collapse's accumulators for the same batch, float32: means, "
             "then per-class variances and the within-class covariance against them (its "
             "two passes).")
    return "CollapseStatistics.update at many classes", rows, list(rows[0]), notes


def peer_update_seconds(peer, K, d, h, y, repeats):
    import torch

    from neural_collapse.accumulate import CovarAccumulator, MeanAccumulator, VarNormAccumulator

    X, Y = torch.as_tensor(h), torch.as_tensor(y)
    means = MeanAccumulator(K, d)
    means.accumulate(X, Y)
    M, _ = means.compute()
    variances, covariance = VarNormAccumulator(K, d, M=M), CovarAccumulator(K, d, M=M)

    def both_passes():
        means.accumulate(X, Y)
        variances.accumulate(X, Y, M)
        covariance.accumulate(X, Y, M)

    return median_seconds(both_passes, repeats)


def gram_floor_seconds(means, tile):
    """One K x K x d Gram product, tile by tile (results discarded)."""
    K = means.shape[0]
    start = time.perf_counter()
    for i in range(0, K, tile):
        A = means[i:i + tile]
        for j in range(0, K, tile):
            A @ means[j:j + tile].T
    return time.perf_counter() - start


def part_measure(sizes, repeats, peer):
    import warnings

    from nc_keras.collapse import CollapseStatistics, tiles

    rows = []
    for K, d in sizes:
        rng = np.random.default_rng(1)
        stats = CollapseStatistics(K, d)
        centres = rng.normal(size=(K, d)).astype(np.float32)
        for start in range(0, 2 * K, BATCH):  # every class seen, twice on average
            y = np.concatenate([np.arange(start, min(start + BATCH, K)),
                                rng.integers(0, K, size=BATCH)])[:BATCH] % K
            stats.update(centres[y] + 0.1 * rng.normal(size=(len(y), d)).astype(np.float32), y)
        W = rng.normal(size=(K, d))
        gc.collect()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # K > d + 1: no simplex ETF
            base = reset_peak_rss()
            measure = median_seconds(lambda: stats.measure(W), repeats if K <= 10000 else 1)
            peak = extra_peak_mb(base)
        floor = gram_floor_seconds(stats.means, tiles.pair_tile_size(K, d))
        row = {"K": K, "d": d, "measure_s": measure, "gram_floor_s": floor,
               "ratio": measure / floor, "extra_peak_MB": peak,
               "peer_cdnv_s": float("nan")}
        if peer is not None and K * K * d <= PEER_CDNV_LIMIT:
            row["peer_cdnv_s"] = peer_cdnv_seconds(stats, K, d)
        rows.append(row)
        print(row, flush=True)
        del stats, W, centres
        gc.collect()
    notes = ("measure() = every metric of `METRIC_KEYS` with W (K x d, float64), all K "
             "classes seen; floor = one float64 K x K x d Gram product of the K x d means "
             "timed tile by tile in the same run (measure's pairwise metrics need half of "
             "it, plus their element-wise work); ratio = measure / floor, target <= 3 at "
             "K = 50,257, d = 1,024. extra_peak_MB = RSS high-water mark during measure() "
             "minus RSS before it (the statistics, K x d means, already allocated), target "
             "<= 256 MiB (the default tile budget). peer_cdnv_s = rhubarbwu/neural-collapse's "
             "variability_cdnv (the CDNV only; float32; tile_size 1,024; its K x K grid) "
             f"where its K x K x d element work is at most {PEER_CDNV_LIMIT:.0e}; NaN: "
             "not run (too slow or too large here).")
    return "CollapseStatistics.measure at many classes", rows, list(rows[0]), notes


def peer_cdnv_seconds(stats, K, d):
    import torch

    from neural_collapse.measure import variability_cdnv

    M = torch.as_tensor(stats.means, dtype=torch.float32)
    variances = torch.as_tensor(stats._class_within() / stats.counts * stats.scale**2,
                                dtype=torch.float32)
    start = time.perf_counter()
    variability_cdnv(variances, M, tile_size=1024)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", default="all", choices=["all", "update", "measure"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rhubarbwu", metavar="PATH",
                        help="a checkout of rhubarbwu/neural-collapse (the folder holding "
                             "its neural_collapse package), run beside nc_keras")
    parser.add_argument("--quick", action="store_true", help="small sizes, no results file")
    parser.add_argument("--no-save", action="store_true", help="do not append to the results file")
    args = parser.parse_args()
    from publish import publish_benchmark

    peer = peer_module(args.rhubarbwu)
    sizes = QUICK_SIZES if args.quick else SIZES
    parts = []
    if args.part in ("all", "update"):
        parts.append(part_update(sizes, args.repeats, peer))
    if args.part in ("all", "measure"):
        parts.append(part_measure(sizes, args.repeats, peer))
    formats = {key: ".3g" for key in ("update_s", "floor_s", "ratio", "samples_per_s",
                                      "peer_update_s", "measure_s", "gram_floor_s",
                                      "peer_cdnv_s")}
    formats["extra_peak_MB"] = ".0f"
    publish_benchmark(parts, RESULTS, formats, save=not (args.quick or args.no_save),
                      argv=["benchmarks/bench_vocab.py", *sys.argv[1:]])


if __name__ == "__main__":
    main()
