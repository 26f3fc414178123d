"""Plain-text tables for the command line, recipes and benchmarks."""

import datetime
import os
import platform
from pathlib import Path


def format_table(rows, columns, formats=None):
    """Formats dict rows as an aligned Markdown table.

    Args:
        rows: a list of dicts.
        columns: the keys to show, in order; a `(key, title)` pair gives the
            column a title other than its key.
        formats: optional dict key -> format spec (e.g. `".2e"`) or callable.

    Returns:
        The table as a string (Markdown: it reads in a terminal and renders
        in README files).
    """
    formats = formats or {}
    keys, titles = [], []
    for column in columns:
        key, title = column if isinstance(column, tuple) else (column, column)
        keys.append(key)
        titles.append(title)

    def cell(key, value):
        spec = formats.get(key)
        if value is None:
            return ""
        if callable(spec):
            return spec(value)
        if spec is not None:
            return format(value, spec)
        if isinstance(value, float):
            return format(value, ".4g")
        return str(value)

    body = [[cell(key, row.get(key)) for key in keys] for row in rows]
    widths = [max([len(t)] + [len(r[i]) for r in body]) for i, t in enumerate(titles)]
    lines = [
        "| " + " | ".join(t.ljust(w) for t, w in zip(titles, widths)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    for values in body:
        lines.append("| " + " | ".join(v.ljust(w) for v, w in zip(values, widths)) + " |")
    return "\n".join(lines)


def machine_description():
    """One line naming this machine: host, CPU count, OS, Python."""
    return (
        f"{platform.node()}, {os.cpu_count()} CPUs, {platform.system()} "
        f"{platform.machine()}, Python {platform.python_version()}"
    )


def append_results(path, title, table, notes=""):
    """Appends a dated benchmark table to a Markdown results file."""
    from nc_keras.io_utils import write_text

    path = Path(path)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    added = f"\n## {title}\n\n{stamp}; {machine_description()}\n\n{table}\n"
    if notes:
        added += f"\n{notes}\n"
    # The whole file rewritten atomically: an interrupted append must not
    # tear the earlier results.
    write_text(path, (path.read_text() if path.exists() else "") + added)


def publish_benchmark(parts, path, formats=None, save=True, argv=()):
    """Prints benchmark tables and appends them, dated, to a results file.

    Args:
        parts: a list of (title, rows, columns, notes), rows and columns as
            for `format_table`.
        path: the Markdown results file.
        formats: format specs by column key, as for `format_table`.
        save: False only prints (quick runs).
        argv: the script's command line, recorded under each table.
    """
    # Timings on a shared machine depend on its load: say what it was.
    load = "Load average (1, 5, 15 min) at the end: {:.1f}, {:.1f}, {:.1f}.".format(
        *os.getloadavg())
    command = " ".join(str(arg) for arg in argv).strip()
    for title, rows, columns, notes in parts:
        notes = f"{notes} {load}"
        table = format_table(rows, columns, formats)
        print(f"\n## {title}\n\n{table}\n\n{notes}", flush=True)
        if save:
            append_results(path, title, table, f"{notes}\nCommand: `{command}`")
