"""Recording a UFM run: the trajectory rows, the stopwatch and the two stops
a record can call (divergence, the gap target).

`Recorder` keeps one row per record (step, phase, f, the gap f - f* and its
relative size, NC1-NC4 from `nc_keras.collapse.metrics`, the optimization
wall time) for the loops in `nc_keras.ufm.descent`; `nc_keras.ufm.solvers`
returns the rows as `SolveResult.trajectory`.
"""

import math
import time
import warnings

import numpy as np

from nc_keras import backend

__all__ = ["NC_KEYS", "BLOW_UP", "Recorder"]

NC_KEYS = ("nc1", "nc2", "nc3", "nc4")
# A run whose f exceeds its starting value this many times has diverged even
# while f is finite: SGD with a huge learning rate reaches f ~ 1e150, where
# the polish would crawl through its whole budget at a step size ~ 1e-80.
# Gradient descent and L-BFGS never increase f, so this only stops SGD/Adam.
BLOW_UP = 1e12


class Recorder:
    """The trajectory of one run, and a stopwatch that pauses while recording
    so that `elapsed` (the rows' "seconds") measures optimization only.

    Args:
        problem: the `Problem` being minimized (its layout and labels).
        best: the exact minimum (`Optimum`), or None: the gaps are then NaN.
        method: the name handed to `progress`.
        progress: None, or callable(method, row) called at each record.
        record_metrics: compute NC1-NC4 at each record.
        gap_tolerance: None, or the relative gap |f - f*| / |f*| at which
            `record` asks the run to stop ("gap").

    `start()` before the first step, `pause()` after the last.
    """

    def __init__(self, problem, best, method, progress, record_metrics, gap_tolerance):
        self.problem, self.best, self.method = problem, best, method
        self.progress, self.record_metrics = progress, record_metrics
        self.gap_tolerance = gap_tolerance
        self.trajectory = []
        self.blow_up_at = None  # f above this has diverged; set at the first record
        self.elapsed = 0.0
        self._started = None

    def start(self):
        self._started = time.perf_counter()

    def pause(self):
        self.elapsed += time.perf_counter() - self._started

    def record(self, step, x, value, phase="main"):
        """Records a point. Returns why the run must stop here, or None:
        "diverged" (f is NaN, infinite or past `BLOW_UP` times its first
        record) or "gap" (the gap target is met)."""
        # Reading the value waits for the computation that produced it: JAX
        # dispatches asynchronously, and the stopwatch must stop after the
        # work, not after its dispatch. The stopping test needs it anyway.
        value = float(backend.to_numpy(value))
        self.pause()
        # Without f* (d < K - 1) there is no gap: NaN keeps the rows' format.
        gap = value - self.best.value if self.best is not None else math.nan
        row = {
            "step": int(step),
            "phase": phase,
            "objective": value,
            "gap": gap,
            "relative_gap": gap / abs(self.best.value) if self.best is not None else math.nan,
            "seconds": self.elapsed,
        }
        if self.record_metrics:
            W, H, b = self.problem.unflatten_numpy(x)
            row.update(_nc_metrics(W, H, b, self.problem.labels))
        self.trajectory.append(row)
        if self.progress:
            self.progress(self.method, row)
        self.start()
        if self.blow_up_at is None:
            self.blow_up_at = BLOW_UP * max(abs(value), 1.0)
        if not value <= self.blow_up_at:  # also true for NaN
            return "diverged"
        if self.gap_tolerance is not None and abs(row["relative_gap"]) <= self.gap_tolerance:
            return "gap"
        return None


def _nc_metrics(W, H, b, labels):
    from nc_keras import collapse

    if not all(np.all(np.isfinite(part)) for part in (W, H, b)):
        # A diverged point: the metrics' SVDs would fail on it.
        return {key: math.nan for key in NC_KEYS}
    with warnings.catch_warnings():
        # At or near the origin the metrics are 0/0 and NaN, by design.
        warnings.simplefilter("ignore", RuntimeWarning)
        measured = collapse.metrics(H.T, labels, W, b)
    return {key: float(measured[key]) for key in NC_KEYS}
