"""Figures say what they show: title and description, legend clear of curves, readable ticks;
the depth profile from a run's log.csv and NC history."""

import csv
import dataclasses
import json
import math

import matplotlib
import numpy as np
import pytest

from nc_keras import plots, presets
from nc_keras.cli import main
from nc_keras.figures import new_figure
from nc_keras.io_utils import save_npz
from nc_keras.run_folder import RunFolder, nc_history_file

COLUMNS = ("epoch", "loss", "nc1", "nc2", "nc3", "nc4", "nc_accuracy", "val_nc_accuracy")


def _write_run(folder, config, epochs, scale=1.0):
    """A run folder with a config.json and a log.csv of `epochs` rows."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    rows = [",".join(COLUMNS)]
    for epoch in range(epochs):
        decay = scale * 0.5**epoch
        values = (epoch, decay, 30 * decay, 0.8 * decay, 1.1 - 0.01 * epoch, 2 * decay,
                  0.1 + 0.1 * epoch, 0.1 + 0.05 * epoch)  # fmt: skip
        rows.append(",".join(str(v) for v in values))
    (folder / "log.csv").write_text("\n".join(rows) + "\n")
    return folder


def _preset_runs(tmp_path, name, preset, epochs=None):
    base, variants = presets.RECIPES[name].presets[preset]
    runs = []
    for index, variant in enumerate(variants):
        config = dataclasses.asdict(dataclasses.replace(base, **variant).resolved())
        runs.append(_write_run(tmp_path / f"run{index}", config, epochs or config["epochs"], 1 + index))
    return runs


@pytest.fixture
def smoke_figure(tmp_path):
    runs = _preset_runs(tmp_path, "fixed_etf", "smoke")
    figure = plots.draw_runs(runs, layout="fig5", title="Fixed ETF (Fig. 5): smoke preset")
    figure.canvas.draw()
    return figure


def test_the_title_names_preset_model_width_data_subset_and_epochs(smoke_figure):
    heading = " ".join(smoke_figure._suptitle.get_text().split())
    for words in ("smoke preset", "ResNet18 width 8 (CIFAR stem)",
                  "CIFAR-10, 100 train / 50 test images per class", "6 epochs", "batch 32"):
        assert words in heading, (words, heading)
    assert "ResNet50" not in heading


def test_the_paper_preset_reads_as_the_papers(tmp_path):
    runs = _preset_runs(tmp_path, "fixed_etf", "paper", epochs=2)
    heading = plots.figure_title("Fig. 5: paper preset", runs)
    assert "ResNet50 (CIFAR stem)" in heading and "full train and test sets" in heading
    assert "200 epochs" in heading


def test_the_legend_covers_no_axes(smoke_figure):
    (legend,) = smoke_figure.legends
    renderer = smoke_figure.canvas.get_renderer()
    box = legend.get_window_extent(renderer)
    assert [text.get_text() for text in legend.get_texts()] == [
        "learned", "fixed ETF", "learned d=K", "fixed ETF d=K",
    ]  # fmt: skip
    for axis in smoke_figure.axes:
        assert not box.overlaps(axis.get_window_extent(renderer)), axis.get_title()


def _visible_labels(axis, minor=False):
    low, high = axis.get_ylim()
    ticks = axis.yaxis.get_minor_ticks() if minor else axis.yaxis.get_major_ticks()
    return [
        tick.label1.get_text() for tick in ticks
        if low <= tick.get_loc() <= high and tick.label1.get_visible() and tick.label1.get_text()
    ]  # fmt: skip


def test_log_axes_label_a_few_major_ticks_and_no_minor_ones(smoke_figure):
    log_axes = [axis for axis in smoke_figure.axes if axis.get_yscale() == "log"]
    assert len(log_axes) == 2  # NC1 (five decades here) and NC3 (within one)
    for axis in log_axes:
        assert _visible_labels(axis, minor=True) == []
        assert 2 <= len(_visible_labels(axis)) <= 7, _visible_labels(axis)
    nc1 = _visible_labels(log_axes[0])
    assert all(label.startswith("$\\mathdefault{10^{") for label in nc1), nc1


def test_accuracy_panels_say_the_train_accuracy_is_the_eval_mode_pass(smoke_figure):
    titles = [axis.get_title() for axis in smoke_figure.axes]
    assert any(title.startswith("train accuracy") and "eval-mode pass" in title for title in titles)


def test_a_one_epoch_run_has_one_whole_epoch_tick(tmp_path):
    runs = _preset_runs(tmp_path, "fixed_etf", "paper", epochs=1)
    figure = plots.draw_runs(runs, layout="fig5")
    figure.canvas.draw()
    for axis in figure.axes:
        low, high = axis.get_xlim()
        shown = [t for t in axis.get_xticks() if low <= t <= high]
        assert shown == [1.0], shown


@pytest.mark.parametrize(
    "low, high",
    [(1e-16, 0.9), (0.02, 0.9), (1.21, 1.37), (0.3, 0.31), (0.2969, 0.2988), (5.0, 5.0)],
)
def test_log_ticks_are_readable_at_any_range(low, high):
    axis = new_figure().subplots()
    axis.plot([1, 2], [low, high])
    axis.set_yscale("log")
    plots._readable_log_ticks(axis, low, high)
    axis.figure.canvas.draw()
    assert _visible_labels(axis, minor=True) == []
    labels = _visible_labels(axis)
    assert 1 <= len(labels) <= 7, labels
    assert all(len(label) <= 24 for label in labels), labels
    assert len(set(labels)) == len(labels), labels  # no two ticks read the same


def test_plot_runs_writes_the_figure(tmp_path):
    runs = _preset_runs(tmp_path, "random_labels", "smoke", epochs=3)
    path = plots.plot_runs(runs, tmp_path / "figure.png", layout="fig4", title="Fig. 4")
    assert path.stat().st_size > 10_000


def write_run(root, layers):
    folder = RunFolder(root)
    folder.root.mkdir()
    columns = ["epoch", "nc1"] + [f"nc1/{name}" for name in layers]
    with open(folder.log, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for epoch in range(3):
            values = [math.nan if epoch == 1 else 10.0 ** (-epoch - i) for i in range(len(columns) - 1)]
            writer.writerow([epoch, *values])
    folder.nc_history.mkdir()
    # The callback saves the measured layers in depth order.
    save_npz(nc_history_file(folder.nc_history, 3), layers=np.array(layers))
    return folder


def test_depth_profile_from_run_folder(tmp_path, capsys):
    layers = ["stage_b", "stage_a"]  # depth order differs from the sorted CSV order
    folder = write_run(tmp_path / "run", layers)
    assert plots._layer_order(folder.root, {}) == layers
    out = plots.plot_depth(folder.root, tmp_path / "depth.png")
    assert out.stat().st_size > 1000
    assert main(["plot", "--layout", "depth", str(folder.root), "-o",
                 str(tmp_path / "cli.png")]) == 0
    assert (tmp_path / "cli.png").exists()
    with pytest.raises(ValueError, match="no nc1/<layer> column for \\['nope'\\]"):
        plots.plot_depth(folder.root, tmp_path / "x.png", layers=["nope"])
    assert main(["plot", "--layout", "depth", str(folder.root), str(folder.root)]) == 2
    assert "draws one run" in capsys.readouterr().err


def test_plotting_leaves_the_users_matplotlib_alone(tmp_path):
    # A notebook's backend stays what it was, and pyplot holds no figure of ours.
    import matplotlib.pyplot as plt

    from nc_keras import ufm

    before = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        runs = _preset_runs(tmp_path, "random_labels", "smoke", epochs=2)
        plots.plot_runs(runs, tmp_path / "runs.png")
        result = ufm.solve(3, 2, 3, method="gd", steps=5, record_metrics=False)
        ufm.plot_trajectory(result, tmp_path / "ufm.png")
        assert matplotlib.get_backend() == "svg"
        assert plt.get_fignums() == []
        assert (tmp_path / "runs.png").read_bytes()[:4] == b"\x89PNG"
        assert (tmp_path / "ufm.png").read_bytes()[:4] == b"\x89PNG"
    finally:
        matplotlib.use(before)
