"""Output of every command: one `--format` option, tables through tabulate, JSON, CSV."""
import csv
import io
import json
import math
import re

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
    """`data` as JSON text that is valid JSON: a value that is not a finite number (inf, NaN) is written
    as null, and a note on standard error names where and what it was."""
    replaced = []
    text = json.dumps(_finite_only(data, "", replaced), indent=2, allow_nan=False)
    for where, value in replaced[:3]:
        click.echo(f"note: {where or 'the value'} is {value} (not a finite number); written as null", err=True)
    if len(replaced) > 3:
        click.echo(f"note: {len(replaced) - 3} more values that are not finite numbers written as null", err=True)
    return text


def _finite_only(obj, where, replaced):
    """A JSON-ready copy of `obj` (numpy values as Python ones) with non-finite floats as None."""
    if hasattr(obj, "tolist"):
        obj = obj.tolist()
    elif hasattr(obj, "to_dict"):
        obj = obj.to_dict()
    if isinstance(obj, float):
        if math.isfinite(obj):
            return obj
        replaced.append((where, obj))
        return None
    if isinstance(obj, dict):
        return {str(k): _finite_only(v, f"{where}.{k}" if where else str(k), replaced) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_only(v, f"{where}[{i}]", replaced) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    return str(obj)


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


_PRINTABLE = re.compile(r"[ -~]*")


def plain_pairs(rows):
    """Two columns of text as tabulate's "plain" format prints them (cells stripped, the first column
    padded, trailing blanks dropped), without importing tabulate (about 50 ms of start-up) when every
    cell is printable ASCII; otherwise through tabulate, which measures wide characters and tabs."""
    cells = [[str(c).strip() for c in row] for row in rows]
    if not cells or any(len(row) != 2 or not _PRINTABLE.fullmatch(row[0] + row[1]) for row in cells):
        from tabulate import tabulate
        return tabulate(rows, tablefmt="plain", disable_numparse=True)
    width = max(len(key) for key, _ in cells)
    return "\n".join(f"{key:<{width}}  {value}".rstrip() for key, value in cells)


def emit_record(pairs, fmt, data=None, notes=(), extra_table=None):
    """Print a record: (field, value) pairs as a two-column table, or `data` as JSON / pairs as CSV."""
    if fmt == "json":
        click.echo(to_json(data if data is not None else dict(pairs)))
        return
    if fmt == "csv":
        emit_table([[v for _, v in pairs]], [k for k, _ in pairs], "csv")
        return
    click.echo(plain_pairs([[k, cell(v)] for k, v in pairs]))
    if extra_table is not None:
        click.echo()
        emit_table(*extra_table, fmt="table")
    for note in notes:
        click.echo(f"note: {note}")
