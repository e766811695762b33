"""`roofline explain` (the formula behind a figure) and `roofline sweep` (a grid in one evaluation)."""
import re

import click
import numpy as np

from ..dtypes import DTYPES
from ..errors import RooflineError, excerpt
from ..readers import write_atomically
from . import cli
from .output import (COUNT, Progress, cell, echo_json_with_list, echo_wrapped, emit_table, format_option, parse_count,
                     quiet_option, to_json)
from .scenario_options import given, scenario_kwargs, scenario_options

_COUNT_TEXT = r"\d+(?:\.\d+)?(?:[kKmM]i?)?"   # 1024, 8k, 8Ki (output.parse_count)
_RANGE = re.compile(rf"^({_COUNT_TEXT}):({_COUNT_TEXT})(?::(?:x(\d+(?:\.\d+)?)|({_COUNT_TEXT})))?$")
MAX_VALUES = 100_000


def parse_values(text, name):
    """Whole numbers from '1,8,64', 'A:B' (step 1), 'A:B:S' (step S) or 'A:B:xF' (times F), mixed;
    counts may be written 8k (8000) or 8Ki (8192).

    Ranges include B when a step lands on it; repeats are dropped, first order kept. Work is linear
    in the values produced, which are at most MAX_VALUES (counted before a range is expanded).
    RooflineError names the item that cannot be read.
    """
    values = []
    for item in (part.strip() for part in str(text).split(",")):
        if len(item) > 60:
            raise RooflineError(f"--{name} {excerpt(item)}: too long; expected whole numbers or ranges")
        if re.fullmatch(_COUNT_TEXT, item):
            values.append(parse_count(item, f"--{name}", minimum=None))
        else:
            values.extend(_range_values(item, name))
        if len(values) > MAX_VALUES:
            raise RooflineError(f"--{name} {excerpt(text)}: more than {MAX_VALUES:,} values; use a coarser step")
    return list(dict.fromkeys(values))


def _range_values(item, name):
    match = _RANGE.match(item)
    if not match:
        raise RooflineError(f"--{name} {item!r}: expected whole numbers or ranges like 1,8,64 or 1:1024:x2 "
                            "or 1024:8192:1024 (or 1k:8k:1k)")
    start, stop, factor, step = match.groups()
    start, stop = (parse_count(v, f"--{name}", minimum=None) for v in (start, stop))
    times = factor is not None
    step = float(factor) if times else parse_count(step, f"--{name}", minimum=None) if step else 1.0
    if start < 1 or stop < start or (times and step <= 1) or (not times and step != int(step)) or step < 1:
        raise RooflineError(f"--{name} {item!r}: a range A:B[:S|:xF] needs 1 <= A <= B, a whole step S >= 1 "
                            "or a factor F > 1")
    if not times:
        if (stop - start) // int(step) + 1 > MAX_VALUES:
            raise RooflineError(f"--{name} {item!r}: more than {MAX_VALUES:,} values; use a coarser step")
        return list(range(start, stop + 1, int(step)))
    values, value = [], float(start)
    while value <= stop and len(values) <= MAX_VALUES:
        values.append(int(round(value)))
        value *= step
    return values


def _echo_notes(notes, err=False):
    for note in notes:
        click.echo(f"note: {note}", err=err)


@cli.command()
@click.argument("phase", type=click.Choice(["decode", "prefill"]))
@scenario_options
@click.option("--batch", "-b", type=COUNT, default=None, help="Sequences (decode) or prompts (prefill) together [1].")
@click.option("--context", type=COUNT, default=None, help="Decode: tokens already in each KV cache [1024].")
@click.option("--prompt", "-p", type=COUNT, default=None, help="Prefill: prompt length in tokens [1024].")
@format_option
def explain(phase, batch, context, prompt, fmt, **params):
    """Show the step-time formula in symbols (sympy) and with the numbers of a model and chip.

    Without --model and --hardware: the general formula of a dense GQA transformer and a glossary.
    """
    from .. import explain as explaining
    if phase == "decode" and prompt is not None:
        raise RooflineError("--prompt is for `explain prefill`; a decode step takes --context")
    if phase == "prefill" and context is not None:
        raise RooflineError("--context is for `explain decode`; a prefill takes --prompt")
    if (params["model"] is None) != (params["hardware"] is None):
        raise RooflineError("explain needs both --model and --hardware, or neither for the general formula")
    if params["model"] is None:
        named = [flag for flag, value in (("--batch", batch), ("--context", context), ("--prompt", prompt))
                 if value is not None] + given(params)
        if named:
            raise RooflineError(f"{', '.join(named)}: {'needs' if len(named) == 1 else 'need'} --model and "
                                "--hardware (the general formula has no numbers)")
        _emit_explanation(explaining.general(phase), fmt)
        return
    length = context if phase == "decode" else prompt
    result = explaining.explain(phase, batch=1 if batch is None else batch, length=1024 if length is None else length,
                                **scenario_kwargs(params))
    _emit_explanation(result, fmt)


def _emit_explanation(e, fmt):
    if fmt == "json":
        click.echo(to_json(e.to_dict()))
        return
    if fmt == "csv":
        emit_table([[o.name, o.group, o.layers, o.dtype, o.flops, o.bytes, o.flops_value, o.bytes_value, o.time_s,
                     o.bound] for o in e.operators],
                   ["operator", "group", "n_op", "dtype", "F_op", "Q_op", "flops", "bytes", "time_s", "bound"], "csv")
        return
    table = "markdown" if fmt == "markdown" else "table"
    numbers = e.time_s is not None
    what = "decode step" if e.phase == "decode" else "prefill"
    if numbers:
        point = ", ".join(f"{s['symbol']} = {s['value']}" for s in e.symbols[:2])
        click.echo(f"{what} of {e.model} on {e.hardware}, {e.mode} mode, {point}\n")
    else:
        click.echo(f"{what} of a {e.model} (any chip), in symbols\n")
    echo_wrapped(f"  {e.formula}", indent="    ")
    if e.mode != "ideal":
        click.echo(f"  {e.notes[0] if not numbers else 'smax_n(a, b) = (a^n + b^n)^(1/n), a smooth max with knee n'}")
    echo_wrapped("\nOperators (F_op FLOPs and Q_op bytes per occurrence, n_op occurrences):")
    headers = ["operator", "group", "n_op", "F_op [FLOP]", "Q_op [B]"]
    rows = [[o.name, o.group, o.layers, o.flops, o.bytes] for o in e.operators]
    if numbers:
        headers += ["F_op", "Q_op", "n_op·t_op [ms]", "bound"]
        rows = [r + [o.flops_value, o.bytes_value, o.time_s * 1e3, o.bound] for r, o in zip(rows, e.operators)]
    emit_table(rows, headers, table)
    echo_wrapped("\nTerms (each operator takes the larger of its compute and memory time, so t_step lies between "
               "max(memory, compute) + fixed and memory + compute + fixed):")
    emit_table([[t["term"], t["expression"]] + ([t["value_s"] * 1e3] if numbers else []) for t in e.terms],
               ["term", "expression"] + (["value [ms]"] if numbers else []), table)
    click.echo("\nStep time in symbols:")
    echo_wrapped(f"  t_step = {e.step_expression}\n", indent="    ")
    headers = ["symbol"] + (["value"] if numbers else []) + ["unit", "meaning"]
    emit_table([[s["symbol"]] + ([cell(s["value"])] if numbers else []) + [s["unit"], s["meaning"]]
                for s in e.symbols], headers, table)
    if numbers:
        click.echo(f"\nt_step = {e.time_s * 1e3:.6g} ms with the values above")
        _echo_notes(e.notes)


#: grid points turned into rows at a time when a sweep is written as CSV or JSON
CHUNK = 100_000


def _emit_grid(grid, fmt, handle, quiet=False):
    """Print a sweep's grid; CSV and JSON in chunks of CHUNK rows, so a grid of millions of points
    never becomes one list of Python rows (CSV with progress on a terminal unless `quiet`)."""
    from ..sweep import COLUMNS
    if fmt == "csv":
        import csv
        import io
        with Progress("writing points", total=len(grid), quiet=quiet) as progress:
            for start in range(0, len(grid), CHUNK):
                buffer = io.StringIO()
                writer = csv.writer(buffer, lineterminator="\n")
                if start == 0:
                    writer.writerow(COLUMNS)
                writer.writerows(zip(*(_csv_column(grid[c][start:start + CHUNK]) for c in COLUMNS)))
                click.echo(buffer.getvalue(), nl=False, file=handle)
                progress.advance(min(CHUNK, len(grid) - start))
        return
    if fmt == "json":
        head = {"model": grid.model, "hardware": grid.hardware, "mode": grid.mode,
                "calibration_source": grid.calibration_source, "notes": grid.notes}
        chunks = ([dict(zip(COLUMNS, row)) for row in zip(*(grid[c][start:start + CHUNK].tolist() for c in COLUMNS))]
                  for start in range(0, len(grid), CHUNK))
        echo_json_with_list(head, "points", chunks, file=handle)
        return
    emit_table(grid.rows(), list(COLUMNS), fmt, file=handle)


def _csv_column(values):
    """A chunk of a column for CSV: floats at 12 significant digits, like every JSON and CSV number
    (display.plain), formatted by numpy so that millions of points stay fast."""
    if values.dtype.kind == "f":
        return np.char.mod("%.12g", values).tolist()
    return values.tolist()


def _output_format(fmt, output):
    if fmt is not None:
        return fmt
    if output and output.lower().endswith((".csv", ".json")):
        return output.lower().rsplit(".", 1)[1]
    return "table"


@cli.command()
@scenario_options(exclude=("weights_dtype",))
@click.option("--batch", "-b", default="1", show_default=True,
              help="Batch sizes: a list and/or ranges, e.g. 1,8,64,512 or 1:1024:x2 or 64:512:64.")
@click.option("--context", default="1024", show_default=True, help="Contexts, same syntax, e.g. 1024,8192.")
@click.option("--weights-dtype", default=None, metavar="DTYPE[,DTYPE...]",
              help="Storage dtypes of the weights to sweep, comma-separated, e.g. bf16,fp8 (default: the model's); "
                   f"each one of {', '.join(DTYPES)}.")
@format_option(default=None, help_text="Output format: table, json, csv or markdown [table; csv or json when "
                                        "--output ends so].")
@click.option("--output", "-o", default=None, metavar="FILE", help="Write to FILE instead of standard output.")
@quiet_option
def sweep(batch, context, weights_dtype, fmt, output, quiet, **params):
    """Decode over a grid of batch sizes x contexts (x weight dtypes) in one vectorised evaluation,
    on one chip or a given layout of several."""
    from ..sweep import sweep as run_sweep
    dtypes = None if weights_dtype is None else [d.strip() for d in weights_dtype.split(",")]
    grid = run_sweep(batch=parse_values(batch, "batch"), context=parse_values(context, "context"),
                     weights_dtype=dtypes, **scenario_kwargs(params))
    fmt = _output_format(fmt, output)
    if output is None:
        _emit_grid(grid, fmt, None, quiet)
    else:
        write_atomically(output, lambda handle: _emit_grid(grid, fmt, handle, quiet), where=f"--output {output}")
        click.echo(f"wrote {len(grid)} points to {output}", err=True)
    if fmt != "json" or output is not None:
        mode = f"{grid.mode} mode on {grid.hardware}" + (f" (calibration {grid.calibration_source})"
                                                          if grid.calibration_source else "")
        _echo_notes([mode, *grid.notes], err=True)
