"""Output of every command: one `--format` option, tables through tabulate, JSON, CSV."""
import csv
import io
import json
import math

import click

FORMATS = ("table", "json", "csv", "markdown")


def format_option(func):
    """The shared `--format table|json|csv|markdown` option (markdown: tables as GitHub pipe tables)."""
    return click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
                        help="Output format.")(func)


def _plain(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    return value


def to_json(data):
    def default(obj):
        if hasattr(obj, "tolist"):
            return obj.tolist()
        if hasattr(obj, "to_dict"):
            return obj.to_dict()
        return str(obj)
    return json.dumps(data, indent=2, default=default, allow_nan=True)


def cell(value):
    """A table cell: floats to 4 significant digits."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    return value


def emit_table(rows, headers, fmt, data=None, title=None, file=None):
    """Print `rows` (lists) under `headers` as a table or CSV; `data` (default: rows as dicts) as JSON.

    `file`: an open text file to write to instead of standard output.
    """
    if fmt == "json":
        click.echo(to_json(data if data is not None else [dict(zip(headers, map(_plain, r))) for r in rows]),
                   file=file)
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(headers)
        writer.writerows([[_plain(v) for v in row] for row in rows])
        click.echo(buffer.getvalue(), nl=False, file=file)
    else:
        from tabulate import tabulate
        if title:
            click.echo(title, file=file)
        click.echo(tabulate([[cell(v) for v in row] for row in rows], headers=headers, disable_numparse=True,
                            tablefmt="github" if fmt == "markdown" else "simple"), file=file)


def emit_record(pairs, fmt, data=None, notes=(), extra_table=None):
    """Print a record: (field, value) pairs as a two-column table, or `data` as JSON / pairs as CSV."""
    if fmt == "json":
        click.echo(to_json(data if data is not None else dict(pairs)))
        return
    if fmt == "csv":
        emit_table([[v for _, v in pairs]], [k for k, _ in pairs], "csv")
        return
    from tabulate import tabulate
    click.echo(tabulate([[k, cell(v)] for k, v in pairs], tablefmt="plain", disable_numparse=True))
    if extra_table is not None:
        click.echo()
        emit_table(*extra_table, fmt="table")
    for note in notes:
        click.echo(f"note: {note}")
