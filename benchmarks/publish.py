"""How every benchmark script publishes its tables: printed, and appended to
`benchmarks/results/*.md` with the date and the hardware (never the host
name: the results are committed).

Imported by the scripts of this folder (`python benchmarks/bench_X.py` puts
the folder on the path).
"""

import datetime
import os
import platform
from pathlib import Path

from nc_keras.io_utils import write_text
from nc_keras.reporting import format_table


def hardware_description():
    """One line naming the hardware and software: CPU count, OS, Python."""
    return (
        f"{os.cpu_count()} CPUs, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}"
    )


def append_results(path, title, table, notes=""):
    """Appends a dated benchmark table to a Markdown results file, whole or not at all."""
    path = Path(path)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    added = f"\n## {title}\n\n{stamp}; {hardware_description()}\n\n{table}\n"
    if notes:
        added += f"\n{notes}\n"
    # The whole file rewritten atomically: an interrupted append must not
    # tear the earlier results.
    write_text(path, (path.read_text() if path.exists() else "") + added)


def publish_benchmark(parts, path, formats=None, save=True, argv=()):
    """Prints benchmark tables and appends them, dated, to a results file.

    Args:
        parts: a list of (title, rows, columns, notes), rows and columns as
            for `nc_keras.reporting.format_table`.
        path: the Markdown results file.
        formats: format specs by column key, as for `format_table`.
        save: False only prints (quick runs).
        argv: the script's command line, recorded under each table.
    """
    # Timings on a shared CPU depend on its load: say what it was.
    load = "Load average (1, 5, 15 min) at the end: {:.1f}, {:.1f}, {:.1f}.".format(
        *os.getloadavg())
    command = " ".join(str(arg) for arg in argv).strip()
    for title, rows, columns, notes in parts:
        notes = f"{notes} {load}"
        table = format_table(rows, columns, formats)
        print(f"\n## {title}\n\n{table}\n\n{notes}", flush=True)
        if save:
            append_results(path, title, table, f"{notes}\nCommand: `{command}`")
