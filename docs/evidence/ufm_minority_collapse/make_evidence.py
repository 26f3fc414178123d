"""Reproduces this folder: python docs/evidence/ufm_minority_collapse/make_evidence.py
(from the repository root; any KERAS_BACKEND, float64). Writes figure.png,
table.md and table.csv next to this file."""

import csv
import sys
import time
from pathlib import Path

import numpy as np

from nc_keras import backend, ufm

PARAMETERS = dict(
    num_major=5, num_minor=5, n_major=100, feature_dim=10,
    lambda_w=1e-3, lambda_h=1e-3, lambda_b=1e-3, starts=2, seed=0,
)


def main(folder=Path(__file__).parent, ratios=np.geomspace(1.0, 1000.0, 31)):
    started = time.time()
    result = ufm.minority_collapse(ratios, progress=True, **PARAMETERS)
    seconds = time.time() - started
    ufm.plot_minority_collapse(result, folder / "figure.png")
    with open(folder / "table.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(result.rows[0]))
        writer.writeheader()
        writer.writerows(result.rows)
    summary = (
        f"backend {backend.name()}, {seconds:.0f} s; minority rows merge (cosine >= 1 - 1e-6) "
        f"from R = {result.collapse_ratio}, vanish from R = {result.vanish_ratio}; "
        f"largest final gradient entry {max(r['gradient'] for r in result.rows):.1e} (learned), "
        f"{max(r['fixed_gradient'] for r in result.rows):.1e} (fixed)"
    )
    (folder / "table.md").write_text(result.table() + "\n\n" + summary + "\n")
    print(result.table())
    print(summary)


if __name__ == "__main__":
    main(*(sys.argv[1:2] and [Path(sys.argv[1]), np.array([1.0, 400.0])]))
