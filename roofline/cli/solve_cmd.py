"""`roofline solve ...` (the model run backwards) and `roofline compare` (chips side by side)."""
import click

from .. import api, solve as solver
from ..scenario import resolve_hardware
from . import cli
from .output import COUNT, DTYPE, echo_wrapped, emit_record, emit_table, format_option, to_json
from .scenario_options import scenario_kwargs, scenario_options

_UNITS = {"chips": "chips", "batch": "sequences", "context": "tokens", "bandwidth": "B/s", "params": "parameters"}


def solve_options(func=None, *, exclude=()):
    """The scenario options (scenario_options.OPTIONS) and --format: what every solve command takes."""
    def add(command):
        return scenario_options(exclude=exclude)(format_option(command))
    return add(func) if func is not None else add


def emit_answer(result, fmt):
    """Print a SolveResult; exit with status 1 when the target cannot be reached."""
    data = result.to_dict()
    if fmt == "json":
        click.echo(to_json(data))
    elif fmt == "csv":
        emit_table([[data[result.question], result.feasible, result.binding, result.layout]],
                   [result.question, "feasible", "binding", "layout"], "csv")
    else:
        value = result.answer
        shown = "not reachable" if value is None else (
            f"{value / 1e9:.4g} GB/s" if result.question == "bandwidth" else
            f"{value / 1e9:.4g}B" if result.question == "params" else
            f"{value} {_UNITS[result.question].rstrip('s') if value == 1 else _UNITS[result.question]}")
        pairs = [(result.question, shown), ("feasible", result.feasible), ("binding", result.binding)]
        if result.layout:
            pairs.append(("layout", result.layout))
        pairs += [(f"margin: {k}", f"{v:.3g}x") for k, v in result.margins.items()]
        emit_record(pairs, fmt)
        for line in result.why:
            echo_wrapped(f"why: {line}", indent="   ")
        for line in result.assumptions:
            echo_wrapped(f"assumes: {line}", indent="       ")
        if result.scan:
            click.echo()
            emit_table([[r["chips"], r["layout"], r["tokens_per_s_per_user"], r["tokens_per_s"], r["bound"]]
                        for r in result.scan], ["chips", "layout", "tok/s per user", "tok/s aggregate", "bound"],
                       fmt, units=["", "", "tok/s", "tok/s", ""])
    if not result.feasible:
        raise click.exceptions.Exit(1)


@cli.group()
def solve():
    """Run the model backwards: what a target needs, and what binds."""


@solve.command("chips")
@solve_options(exclude=("chips", "microbatches"))
@click.option("--tokens-per-s-per-user", type=float, default=None, help="Per-user decode speed to reach.")
@click.option("--tokens-per-s", type=float, default=None, help="Aggregate decode speed to reach.")
@click.option("--batch", "-b", type=COUNT, default=None,
              help="Sequences per model replica (default 1; with --tokens-per-s the solver chooses it).")
@click.option("--context", type=COUNT, default=1024, show_default=True, help="Tokens cached per sequence.")
@click.option("--max-chips", type=COUNT, default=20000, show_default=True, help="Largest chip count searched.")
@click.option("--max-usd-per-mtok", type=float, default=None, help="Highest cost per million tokens allowed.")
def solve_chips(fmt, tokens_per_s_per_user, tokens_per_s, batch, context, max_chips, max_usd_per_mtok, **params):
    """The fewest chips reaching a per-user and/or aggregate speed (and a cost), with the layout.

    --tp/--pp/--ep fix the layout of a replica; without them every layout is searched."""
    emit_answer(solver.solve_chips(tokens_per_s_per_user=tokens_per_s_per_user, tokens_per_s=tokens_per_s,
                                   batch=batch, context=context, max_chips=max_chips,
                                   max_usd_per_mtok=max_usd_per_mtok, **scenario_kwargs(params)), fmt)


@solve.command("batch")
@solve_options(exclude=("microbatches",))
@click.option("--tokens-per-s-per-user", type=float, required=True, help="Per-user decode speed to keep.")
@click.option("--context", type=COUNT, default=1024, show_default=True, help="Tokens cached per sequence.")
def solve_batch(fmt, tokens_per_s_per_user, context, **params):
    """The largest batch that keeps a per-user speed and fits memory (every split of --chips searched)."""
    emit_answer(solver.solve_batch(tokens_per_s_per_user=tokens_per_s_per_user, context=context,
                                   **scenario_kwargs(params)), fmt)


@solve.command("context")
@solve_options
@click.option("--batch", "-b", type=COUNT, default=1, show_default=True, help="Sequences decoded together.")
@click.option("--tokens-per-s-per-user", type=float, default=None, help="Optional per-user speed to keep.")
def solve_context(fmt, batch, tokens_per_s_per_user, **params):
    """The longest context that fits (and keeps a per-user speed, if given; every split of --chips searched)."""
    emit_answer(solver.solve_context(batch=batch, tokens_per_s_per_user=tokens_per_s_per_user,
                                     **scenario_kwargs(params)), fmt)


@solve.command("bandwidth")
@solve_options
@click.option("--tokens-per-s-per-user", type=float, required=True, help="Per-user decode speed to reach.")
@click.option("--batch", "-b", type=COUNT, default=1, show_default=True, help="Sequences decoded together.")
@click.option("--context", type=COUNT, default=1024, show_default=True, help="Tokens cached per sequence.")
@click.option("--resource", type=click.Choice(["memory", "link"]), default="memory", show_default=True,
              help="Solve for memory bandwidth or for the bandwidth of the link between chips.")
def solve_bandwidth(fmt, tokens_per_s_per_user, batch, context, resource, **params):
    """The memory or link bandwidth per chip a per-user speed needs."""
    emit_answer(solver.solve_bandwidth(tokens_per_s_per_user=tokens_per_s_per_user, batch=batch, context=context,
                                       resource=resource, **scenario_kwargs(params)), fmt)


@solve.command("params")
@click.option("--hardware", "--chip", "-c", "hardware", required=True, help="Chip id or spec file.")
@click.option("--chips", "-n", type=COUNT, default=1, show_default=True, help="Chips.")
@click.option("--weights-dtype", type=DTYPE, default="bf16", show_default=True, help="Storage dtype of the weights.")
@click.option("--reserve", type=float, default=0.1, show_default=True,
              help="Share of memory kept for KV cache and activations.")
@click.option("--memory-tier", default=None, help="Memory tier that holds the weights.")
@format_option
def solve_params(hardware, chips, weights_dtype, reserve, memory_tier, fmt):
    """The largest model (parameter count) whose weights fit N chips."""
    emit_answer(solver.solve_params(hardware, chips, weights_dtype, reserve, memory_tier), fmt)


@cli.command()
@click.option("--hardware", "--chip", "-c", "hardwares", multiple=True, required=True,
              help="Chip id; repeat for each chip to compare.")
@solve_options(exclude=("hardware",))
@click.option("--batch", "-b", type=COUNT, default=1, show_default=True, help="Sequences decoded together.")
@click.option("--context", type=COUNT, default=1024, show_default=True, help="Tokens cached per sequence.")
def compare(hardwares, fmt, batch, context, **params):
    """The same decode question on several chips, side by side (one mode for all: calibrated only
    where every chip has a calibration, unless --mode says)."""
    options = scenario_kwargs(params)
    if options.get("mode") is None and options.get("calibration") is None:
        chips_specs = [resolve_hardware(hw) for hw in hardwares]
        options["mode"] = "calibrated" if all(h.calibration is not None for h in chips_specs) else "ideal"
    results = [api.decode(hardware=hw, batch=batch, context=context, **options) for hw in hardwares]
    keys = ["hardware", "mode", "calibration_source", "chips", "tp", "pp", "time_s", "tokens_per_s_per_user", "tokens_per_s", "bound",
            "memory_needed_bytes", "fits", "usd_per_mtok", "joules_per_token"]
    rows = [[r.to_dict()[k] for k in keys] for r in results]
    if fmt in ("table", "markdown"):        # a missing price or power reads as unknown, not as a blank
        rows = [[("unknown" if v is None and k in ("usd_per_mtok", "joules_per_token") else v)
                 for k, v in zip(keys, row)] for row in rows]
    emit_table(rows, keys, fmt, data=[{k: r.to_dict()[k] for k in keys + ["notes"]} for r in results])
    if fmt == "table":
        base = results[0]
        for r in results[1:]:
            click.echo(f"{r.hardware} vs {base.hardware}: {r.tokens_per_s_per_user / base.tokens_per_s_per_user:.3g}x "
                       f"per user, {r.tokens_per_s / base.tokens_per_s:.3g}x aggregate")
        for r in results:
            for note in r.notes:
                click.echo(f"note ({r.hardware}): {note}")
