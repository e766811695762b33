"""`roofline decode` and `roofline prefill`: one model on one chip or several."""
import click

from .. import api, speculative
from . import cli
from .economics_options import speculative_fields, speculative_options, speculative_request
from ..display import step_sections
from .output import COUNT, emit_sections, emit_table, format_option
from .scenario_options import scenario_kwargs, scenario_options

DECODE_KEYS = ("step_time_s", "tokens_per_s_per_user", "tokens_per_s", "bound", "weight_bytes", "kv_cache_bytes",
               "fits")


def emit_step(result, fmt, breakdown, keys, extra=None):
    """Print a decode or prefill result: grouped sections for people, the plain fields for programs.

    `keys` (the fields a command puts first) only orders CSV columns; tables group by meaning.
    """
    data = {**result.to_dict(), **(extra or {})}
    if not breakdown:
        data.pop("operators")
    if fmt == "csv" and breakdown:
        _emit_operators(result, fmt)
        return
    if fmt == "csv":
        data = {**{k: data[k] for k in keys if k in data}, **data}
    emit_sections(step_sections(result, extra or {}), fmt, data, notes=result.notes)
    if breakdown and fmt in ("table", "markdown"):
        click.echo()
        _emit_operators(result, fmt)


def _operator_table(result):
    """Operators, then fixed costs and link time as rows of their own, so the share column sums to 100%."""
    rows = [[o.name, o.group, o.count, o.flops, o.bytes, o.intensity, o.time_s, o.bound] for o in result.operators]
    rows += [[name, "step", "", None, None, None, value, kind] for name, value, kind in (
        ("fixed costs", result.overhead_time_s, "overhead"),
        ("link latency", result.link_latency_time_s, "link latency"),
        ("link bandwidth", result.link_bandwidth_time_s, "link bandwidth")) if value]
    total = sum(row[6] for row in rows) or 1.0
    for row in rows:
        row.insert(7, 100 * row[6] / total)
    headers = ["operator", "layers", "count", "flops", "bytes", "flop_per_byte", "time_s", "share_percent", "bound"]
    return rows, headers


def _emit_operators(result, fmt):
    rows, headers = _operator_table(result)
    if fmt in ("table", "markdown"):
        rows = [row[:7] + [f"{row[7]:.1f}%"] + row[8:] for row in rows]
        emit_table(rows, ["operator", "layers", "count", "FLOPs", "bytes", "FLOP/byte", "time", "share", "bound"],
                   fmt, units=["", "", "", "FLOP", "B", "FLOP/B", "s", "", ""])
        return
    emit_table(rows, headers, fmt)


def step_options(func):
    """The scenario options plus --breakdown and --format: what decode and prefill take."""
    for option in (format_option, click.option("--breakdown", is_flag=True,
                                                help="List every operator with FLOPs, bytes, time and bound."),
                   scenario_options):
        func = option(func)
    return func


@cli.command()
@step_options
@click.option("--batch", "-b", type=COUNT, default=1, show_default=True, help="Sequences decoded together.")
@click.option("--context", type=COUNT, default=1024, show_default=True, help="Tokens already in each KV cache.")
@speculative_options
def decode(breakdown, fmt, batch, context, draft, draft_tokens, acceptance, draft_weights_dtype, **params):
    """Time of one decode step, tokens/s per user and in aggregate, what bounds it, and its cost.

    With --speculative, also the speculative round: tokens per step, speed-up, tokens/s with speculation.
    """
    options = scenario_kwargs(params)
    request = speculative_request(draft, draft_tokens, acceptance, draft_weights_dtype)
    if request is None:
        emit_step(api.decode(batch=batch, context=context, **options), fmt, breakdown, DECODE_KEYS)
        return
    spec = speculative.decode(**request, batch=batch, context=context, **options)
    emit_step(spec.base, fmt, breakdown, DECODE_KEYS, extra=speculative_fields(spec))


@cli.command()
@step_options
@click.option("--prompt", "-p", type=COUNT, required=True, help="Prompt length in tokens.")
@click.option("--batch", "-b", type=COUNT, default=1, show_default=True, help="Prompts processed together.")
def prefill(breakdown, fmt, prompt, batch, **params):
    """Time of the prefill of a prompt (time to first token), prompt tokens/s and their cost."""
    result = api.prefill(prompt=prompt, batch=batch, **scenario_kwargs(params))
    emit_step(result, fmt, breakdown, ("time_s", "tokens_per_s", "bound", "weight_bytes", "kv_cache_bytes", "fits"))
