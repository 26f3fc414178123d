"""The UFM figures: one trajectory and a whole landscape."""

from nc_keras import ufm
import os
import pytest


def test_landscape_and_trajectory_figures(tmp_path):
    result = ufm.landscape(4, 5, 10, methods=("gd", "sgd"), starts=1, progress=False)
    assert ufm.plot_landscape(result, tmp_path / "landscape.png").stat().st_size > 1000
    assert ufm.plot_trajectory(result.runs[1], tmp_path / "run.png").stat().st_size > 1000


def test_small_ufm_figure_write_that_fails_keeps_the_earlier_figure(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from nc_keras.ufm import plots as ufm_plots

    result = ufm.solve(3, 4, 2, method="gd", steps=5, record_metrics=False)
    target = tmp_path / "ufm.png"
    target.write_bytes(b"the earlier figure")

    def interrupted(self, out, **kwargs):  # a Ctrl-C in the middle of the write
        out = open(out, "wb") if isinstance(out, (str, os.PathLike)) else out
        out.write(b"\x89PNG half")
        out.flush()
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ufm_plots.plot_trajectory(result, target)
    assert target.read_bytes() == b"the earlier figure"
    assert [p.name for p in tmp_path.iterdir()] == ["ufm.png"]
