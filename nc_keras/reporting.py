"""Plain-text tables for the command line, recipes and benchmarks."""


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
