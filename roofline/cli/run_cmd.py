"""`roofline decode` and `roofline prefill`: one model on one chip or several."""
import click

from .. import api, speculative
from . import cli
from .economics_options import speculative_fields, speculative_options, speculative_request
from .output import emit_record, emit_table, format_option
from .scenario_options import scenario_kwargs, scenario_options

DECODE_KEYS = ("step_time_s", "tokens_per_s_per_user", "tokens_per_s", "bound", "weight_bytes", "kv_cache_bytes",
               "fits")


def emit_step(result, fmt, breakdown, keys, extra=None):
    data = {**result.to_dict(), **(extra or {})}
    if not breakdown:
        data.pop("operators")
    if fmt == "json":
        emit_record([], fmt, data=data)
        return
    pairs = [(k, data[k]) for k in keys] + [(k, v) for k, v in data.items()
                                            if k not in keys and k not in ("operators", "notes", "dtypes")]
    pairs.append(("dtypes", ", ".join(f"{k}={v}" for k, v in result.dtypes.items())))
    if fmt == "csv" and breakdown:
        _emit_operators(result, fmt)
        return
    table = None
    if breakdown:
        table = _operator_table(result)
    emit_record(pairs, fmt, notes=result.notes, extra_table=table)


def _operator_table(result):
    rows = [[o.name, o.group, o.count, o.flops, o.bytes, o.intensity, o.time_s * 1e3,
             100 * o.time_s / result.time_s, o.bound] for o in result.operators]
    headers = ["operator", "layers", "count", "flops", "bytes", "flop/byte", "time_ms", "% of step", "bound"]
    return rows, headers


def _emit_operators(result, fmt):
    rows, headers = _operator_table(result)
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
@click.option("--batch", "-b", type=int, default=1, show_default=True, help="Sequences decoded together.")
@click.option("--context", type=int, default=1024, show_default=True, help="Tokens already in each KV cache.")
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
@click.option("--prompt", "-p", type=int, required=True, help="Prompt length in tokens.")
@click.option("--batch", "-b", type=int, default=1, show_default=True, help="Prompts processed together.")
def prefill(breakdown, fmt, prompt, batch, **params):
    """Time of the prefill of a prompt (time to first token), prompt tokens/s and their cost."""
    result = api.prefill(prompt=prompt, batch=batch, **scenario_kwargs(params))
    emit_step(result, fmt, breakdown, ("time_s", "tokens_per_s", "bound", "weight_bytes", "kv_cache_bytes", "fits"))
