"""The UFM figures: one trajectory and a whole landscape."""

from nc_keras import ufm


def test_landscape_and_trajectory_figures(tmp_path):
    result = ufm.landscape(4, 5, 10, methods=("gd", "sgd"), starts=1, progress=False)
    assert ufm.plot_landscape(result, tmp_path / "landscape.png").stat().st_size > 1000
    assert ufm.plot_trajectory(result.runs[1], tmp_path / "run.png").stat().st_size > 1000
