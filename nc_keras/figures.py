"""Figures without pyplot: no global state, no window, the user's backend untouched.

Every figure of nc_keras is a `matplotlib.figure.Figure` drawn on its own
Agg canvas: nothing is registered with pyplot (nothing to close, nothing
shown in a notebook by accident), and `matplotlib.use` is never called, so
a notebook or GUI session keeps its backend.
"""

from pathlib import Path

from nc_keras.io_utils import atomic_writer

__all__ = ["new_figure", "save_figure"]


def new_figure(**kwargs):
    """A `matplotlib.figure.Figure(**kwargs)` on an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(**kwargs)
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure, path, dpi=None):
    """Writes `figure` to `path` (format by extension) atomically; returns the path.

    As every file of a run, an interrupted save leaves the old file whole.
    """
    path = Path(path)
    with atomic_writer(path, "wb") as out:
        figure.savefig(out, format=path.suffix.lstrip(".") or None, dpi=dpi)
    return path
