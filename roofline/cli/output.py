"""Output of every command: one `--format` option, tables for people, JSON and CSV for programs.

Tables print numbers with units and decimal SI prefixes at 4 significant digits (`16.06 GB`,
`6.711 ms`, `2.3 kW`, `149 tok/s`), the unit chosen from the field name, and fit the terminal
width. JSON and CSV carry plain SI magnitudes under the fields' own names, rounded to 12
significant digits so that binary noise (`4.9999999999999996e-06`) does not reach a program.
"""
import csv
import io
import json
import math
import re
import shutil
import sys
import textwrap
import time

import click

from ..display import cell, field_unit, plain
from ..dtypes import DTYPES
from ..errors import RooflineError, excerpt

FORMATS = ("table", "json", "csv", "markdown")


def to_json(data):
    """`data` as valid JSON text (floats through display.plain): a value that is not a finite number
    (inf, NaN) is written as null, and a note on standard error names where and what it was."""
    replaced = []
    text = json.dumps(_finite_only(data, "", replaced), indent=2, allow_nan=False)
    _note_replaced(replaced)
    return text


def _note_replaced(replaced):
    for where, value in replaced[:3]:
        click.echo(f"note: {where or 'the value'} is {value} (not a finite number); written as null", err=True)
    if len(replaced) > 3:
        click.echo(f"note: {len(replaced) - 3} more values that are not finite numbers written as null", err=True)


def echo_json_with_list(head, key, chunks, file=None):
    """Print {**head, key: [items...]} as to_json would, the list written chunk by chunk (`chunks`
    yields lists of items), so that a list of millions of items never exists whole, as Python
    objects or as text. The text equals to_json({**head, key: every item}).
    """
    replaced = []
    opening = json.dumps(_finite_only({**head, key: []}, "", replaced), indent=2, allow_nan=False)
    closing = "[]\n}"
    click.echo(opening[:-len(closing)] + "[", nl=False, file=file)
    written = 0
    for chunk in chunks:
        items = [_finite_only(item, f"{key}[{written + i}]", replaced) for i, item in enumerate(chunk)]
        text = json.dumps(items, indent=2, allow_nan=False)[1:-2]        # the items, without [ and \n]
        click.echo(("," if written else "") + text.replace("\n", "\n  "), nl=False, file=file)
        written += len(items)
    click.echo("\n  ]\n}" if written else "]\n}", file=file)
    _note_replaced(replaced)


def _finite_only(obj, where, replaced):
    """A JSON-ready copy of `obj` (numpy values as Python ones, floats rounded by display.plain) with
    each float that is not finite as None, recorded in `replaced` as (where, value)."""
    if hasattr(obj, "tolist") and not isinstance(obj, (list, tuple, dict, str)):
        obj = obj.tolist()
    elif hasattr(obj, "to_dict"):
        obj = obj.to_dict()
    if isinstance(obj, float):
        if math.isfinite(obj):
            return plain(obj)
        replaced.append((where, obj))
        return None
    if isinstance(obj, dict):
        return {str(k): _finite_only(v, f"{where}.{k}" if where else str(k), replaced) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_only(v, f"{where}[{i}]", replaced) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    return str(obj)


# ---------------------------------------------------------------------------------------------------------------
# click parameters shared by the commands


def format_option(func=None, *, default="table", help_text=None, extra=()):
    """The shared `--format table|json|csv|markdown` option (markdown: tables as GitHub pipe tables).

    Every command takes the same four choices (`extra` adds a command's own, e.g. show's yaml);
    `default=None` lets a command infer the format from its --output file's extension.
    """
    def decorate(f):
        return click.option("--format", "fmt", type=click.Choice(FORMATS + tuple(extra)), default=default,
                            show_default=default is not None,
                            help=help_text or "Output format: table for people, json or csv for programs, "
                                              "markdown for documents.")(f)
    return decorate(func) if func is not None else decorate


class DtypeType(click.ParamType):
    """A storage dtype of roofline.dtypes (or, with `many`, a comma-separated list of them)."""

    name = "dtype"

    def __init__(self, many=False):
        self.many = many

    def get_metavar(self, param, ctx=None):
        return "[" + "|".join(DTYPES) + "]" + (",..." if self.many else "")

    def convert(self, value, param, ctx):
        if value is None or (not isinstance(value, str)):
            return value
        names = [v.strip() for v in value.split(",")] if self.many else [value.strip()]
        role = _DTYPE_ROLES.get(param.name if param is not None else None, "")
        for name in names:
            if name not in DTYPES:
                self.fail(f"unknown {role + ' ' if role else ''}dtype {name!r}; expected one of {', '.join(DTYPES)}",
                          param, ctx)
        return ",".join(names) if self.many else names[0]


_DTYPE_ROLES = {"weights_dtype": "weights", "kv_dtype": "kv-cache", "activations_dtype": "activations",
                "draft_weights_dtype": "draft weights"}
DTYPE = DtypeType()
DTYPE_LIST = DtypeType(many=True)

_COUNT = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(k|ki|m|mi)?\s*$", re.IGNORECASE)
_COUNT_SCALE = {None: 1, "k": 10 ** 3, "m": 10 ** 6, "ki": 2 ** 10, "mi": 2 ** 20}


def parse_count(text, name="count", minimum=1):
    """A whole number as people write it: 8192, 8k (8000), 128k (128000), 1.5M, 8Ki (8192), 128Ki (131072).

    k and M are decimal (roofline's rule: decimal SI prefixes); Ki and Mi are binary. RooflineError
    names `name` when the text is no whole number or (with a `minimum`) less than `minimum`.
    """
    where = f"{name} {excerpt(text)}" if name else excerpt(text)
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        match = _COUNT.match(str(text))
        if not match:
            raise RooflineError(f"{where} is not a valid integer; expected a count such as 8192, 8k (8000) or "
                                "8Ki (8192)")
        number, suffix = match.groups()
        exact = float(number) * _COUNT_SCALE[suffix.lower() if suffix else None]
        if not math.isfinite(exact):
            raise RooflineError(f"{where} is too large; expected a count such as 8192, 8k (8000) or 8Ki (8192)")
        if exact != int(exact):
            raise RooflineError(f"{where} is not a valid integer ({exact:g}); expected a whole count")
        value = int(exact)
    if minimum is not None and value < minimum:
        raise RooflineError(f"{where}: expected a whole number of at least {minimum}")
    return value


class CountType(click.ParamType):
    """A click parameter for counts (tokens, sequences, chips) that takes `8k`, `128k`, `8Ki`, `1.5M`.

    The range is left to the library, whose message names the quantity (`batch must be ...`).
    """

    name = "count"

    def get_metavar(self, param, ctx=None):
        return "N"

    def convert(self, value, param, ctx):
        if value is None:
            return None
        try:
            return parse_count(value, name=None, minimum=None)
        except RooflineError as exc:
            self.fail(str(exc), param, ctx)


COUNT = CountType()


# ---------------------------------------------------------------------------------------------------------------
# terminal width and wrapping


def terminal_width():
    """Columns to wrap tables and text to: $ROOFLINE_WIDTH if set (0: never wrap), else the terminal's
    width when standard output is a terminal (COLUMNS counts there), else None: piped output is not
    wrapped, so that programs and pagers get whole lines."""
    import os
    forced = os.environ.get("ROOFLINE_WIDTH", "").strip()
    if forced.isdigit():
        return max(40, int(forced)) if int(forced) else None
    if not _is_terminal(sys.stdout):
        return None
    return max(40, shutil.get_terminal_size((100, 24)).columns)


def echo_wrapped(text, indent="", file=None, err=False):
    """Echo `text` wrapped to the terminal width; continuation lines indented by `indent` plus two spaces."""
    width = terminal_width()
    for line in str(text).split("\n"):
        if width is None or len(line) <= width:
            click.echo(line, file=file, err=err)
            continue
        lead = indent or re.match(r"\s*", line).group(0)
        click.echo(textwrap.fill(line, width=width, subsequent_indent=lead + "  ", break_long_words=False,
                                 break_on_hyphens=False), file=file, err=err)


def _tabulate(rows, headers, tablefmt, width=None):
    """tabulate, with the widest prose columns (text with spaces; never ids or numbers) wrapped
    until the table fits `width` columns, when a width is given."""
    from tabulate import tabulate
    text = tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True)
    if width is None or tablefmt == "github" or not rows:
        return text
    columns = max(len(r) for r in rows)
    prose = [i for i in range(columns) if any(" " in str(r[i]) and len(str(r[i])) > 12 for r in rows if i < len(r))]
    limits = [None] * columns
    for _ in range(4 * columns):
        longest = max((len(line) for line in text.splitlines()), default=0)
        if longest <= width or not prose:
            break
        widths = {i: limits[i] or max(len(str(r[i])) for r in rows if i < len(r)) for i in prose}
        widest = max(prose, key=widths.get)
        new = max(12, widths[widest] - (longest - width))
        if new >= widths[widest]:
            prose.remove(widest)
            continue
        limits[widest] = new
        text = tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True, maxcolwidths=limits)
    return text


# ---------------------------------------------------------------------------------------------------------------
# emitters


def emit_table(rows, headers, fmt, data=None, title=None, file=None, units=None):
    """Print `rows` (lists) under `headers` as a table or CSV; `data` (default: rows as dicts) as JSON.

    `units`: the unit of each column for the table (default: from each header's name; a header
    that names no unit prints its numbers without one). `file`: an open text file instead of
    standard output (tables are then not wrapped).
    """
    if fmt == "json":
        click.echo(to_json(data if data is not None else [dict(zip(headers, r)) for r in rows]), file=file)
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(headers)
        writer.writerows([[plain(v) for v in row] for row in rows])
        click.echo(buffer.getvalue(), nl=False, file=file)
    else:
        units = list(units) if units is not None else [field_unit(h) for h in headers]
        shown = [[cell(v, units[i] if i < len(units) else "") for i, v in enumerate(row)] for row in rows]
        if title:
            click.echo(title, file=file)
        click.echo(_tabulate(shown, headers, "github" if fmt == "markdown" else "simple",
                             width=None if file is not None else terminal_width()), file=file)


def emit_record(pairs, fmt, data=None, notes=(), extra_table=None):
    """Print a record: (field, value) pairs as a two-column table, or `data` as JSON / pairs as CSV.

    Table cells take the unit their field's name implies (`weight_bytes` -> GB, `time_s` -> ms).
    """
    if fmt == "json":
        click.echo(to_json(data if data is not None else dict(pairs)))
        return
    if fmt == "csv":
        emit_table([[v for _, v in pairs]], [k for k, _ in pairs], "csv")
        return
    rows = [[k, cell(v, field_unit(k))] for k, v in pairs if v is not None and v != ""]
    if fmt == "markdown":
        click.echo(_tabulate(rows, ["field", "value"], "github"))
    else:
        click.echo(_tabulate(rows, (), "plain", width=terminal_width()))
    if extra_table is not None:
        click.echo()
        emit_table(*extra_table, fmt=fmt)
    for note in notes:
        echo_wrapped(f"note: {note}")


def emit_sections(sections, fmt, data, notes=()):
    """Print grouped sections (answer, time, memory, layout, cost, assumptions) as a table, or `data`
    (the record's plain fields, under their own names) as JSON or as one CSV row.

    Empty sections are left out; notes follow, wrapped to the terminal.
    """
    if fmt == "json":
        click.echo(to_json(data))
        return
    if fmt == "csv":
        flat = {k: (", ".join(f"{a}={b}" for a, b in v.items()) if isinstance(v, dict) else v)
                for k, v in data.items() if not isinstance(v, list)}
        emit_table([list(flat.values())], list(flat), "csv")
        return
    sections = [s for s in sections if s.rows]
    if fmt == "markdown":
        rows = [[s.title if i == 0 else "", label, cell(value, unit)]
                for s in sections for i, (label, value, unit) in enumerate(s.rows)]
        click.echo(_tabulate(rows, ["section", "field", "value"], "github"))
    else:
        label_width = max((len(label) for s in sections for label, _, _ in s.rows), default=0)
        for n, section in enumerate(sections):
            if n:
                click.echo()
            click.echo(section.title)
            for label, value, unit in section.rows:
                echo_wrapped(f"  {label.ljust(label_width)}  {cell(value, unit)}", indent=" " * (label_width + 2))
    if notes:
        click.echo()
    for note in notes:
        echo_wrapped(f"note: {note}", indent="    ")


# ---------------------------------------------------------------------------------------------------------------
# progress


class Progress:
    """Progress of a long command on standard error: shown only on a terminal, after `delay` seconds,
    and never with `quiet` (or when standard error is piped or captured).

        with Progress("validating", total=len(rows), quiet=quiet) as progress:
            for row in rows:
                ...; progress.advance()
    """

    def __init__(self, label, total=None, quiet=False, delay=1.0, stream=None):
        self.label, self.total, self.delay = label, total, delay
        self.stream = stream or sys.stderr
        self.enabled = not quiet and _is_terminal(self.stream)
        self.done, self.start, self.shown, self._last = 0, time.monotonic(), False, 0.0

    def __enter__(self):
        return self

    def advance(self, steps=1, what=None):
        self.done += steps
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.start < self.delay or now - self._last < 0.1:
            return
        self._last = now
        count = f"{self.done}/{self.total}" if self.total else f"{self.done}"
        share = f" {100 * self.done / self.total:3.0f}%" if self.total else ""
        width = shutil.get_terminal_size((80, 24)).columns - 1
        line = f"\r{self.label}: {count}{share}" + (f" {what}" if what else "")
        self.stream.write(line[:width].ljust(min(width, 60)))
        self.stream.flush()
        self.shown = True

    def __exit__(self, *exc):
        if self.shown:
            self.stream.write("\r" + " " * min(shutil.get_terminal_size((80, 24)).columns - 1, 80) + "\r")
            self.stream.flush()
        return False


def _is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def quiet_option(func):
    """--quiet: no progress on standard error."""
    return click.option("--quiet", "-q", is_flag=True, help="Show no progress on standard error.")(func)
