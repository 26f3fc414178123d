"""recipes/held_out_classes.py: one small epoch writes every column it promises."""

import json
import runpy
from pathlib import Path

import numpy as np
import pytest

from nc_keras.callbacks import read_csv_log

SCRIPT = Path(__file__).resolve().parents[2] / "recipes" / "held_out_classes.py"


def test_held_out_recipe_logs_depth_ood_and_held_out_metrics(tmp_path):
    main = runpy.run_path(str(SCRIPT))["main"]
    out = tmp_path / "run"
    assert main(["--output-dir", str(out), "--epochs", "1", "--width", "16", "--depth", "2"]) == 0
    log = read_csv_log(out / "log.csv")
    assert log["epoch"] == [0]
    for key in ("nc1/relu1", "ncc_accuracy/relu1", "numerical_rank/relu1", "nc5", "nc5/relu1",
                "val_ncc_accuracy", "heldout_cdnv", "heldout_few_shot_accuracy"):
        assert np.isfinite(log[key][0]), key
    summary = json.loads((out / "summary.json").read_text())
    assert summary["held_out"]["num_classes"] == 5 and summary["held_out"]["num_samples"] == 500
    assert summary["held_out"]["cdnv"] == pytest.approx(log["heldout_cdnv"][0])
    assert 0.0 <= summary["neco_auroc_vs_random_pixels"] <= 1.0
    with pytest.raises(SystemExit):  # a finished run is never overwritten
        main(["--output-dir", str(out)])
