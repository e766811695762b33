"""`roofline decode` and `roofline prefill`: one model on one chip."""
import click

from .. import api, speculative
from ..errors import RooflineError
from . import cli
from .economics_options import (cost_options, cost_request, speculative_fields, speculative_options,
                                speculative_request)
from .output import emit_record, emit_table, format_option

DECODE_KEYS = ("step_time_s", "tokens_per_s_per_user", "tokens_per_s", "bound", "weight_bytes", "kv_cache_bytes",
               "fits")


def parse_sets(values):
    """--set FIELD=VALUE pairs as a dict; RooflineError for a pair without '='."""
    overrides = {}
    for text in values:
        field, sep, value = text.partition("=")
        if not sep or not field.strip():
            raise RooflineError(f"--set {text!r}: expected FIELD=VALUE, e.g. --set num_layers=20")
        overrides[field.strip()] = value.strip()
    return overrides


def model_options(func):
    """Options shared by the commands that evaluate one model on one chip."""
    options = [
        click.option("--model", "-m", required=True, help="Model id (roofline list models) or spec file."),
        click.option("--hardware", "--chip", "-c", "hardware", required=True,
                     help="Chip id (roofline list hardware) or spec file."),
        click.option("--mode", type=click.Choice(["ideal", "calibrated"]), default=None,
                     help="ideal: datasheet peaks, a lower bound. calibrated: achieved ceilings and fixed costs "
                          "(default where the chip has a calibration)."),
        click.option("--calibration", default=None,
                     help="Calibration file or id replacing the chip's default (roofline calibrate writes one)."),
        click.option("--weights-dtype", default=None, help="Storage dtype of the weights (and experts)."),
        click.option("--kv-dtype", default=None, help="Storage dtype of the KV cache."),
        click.option("--activations-dtype", default=None, help="Dtype of activations."),
        click.option("--memory-tier", default=None, help="Memory tier that holds the weights (default: the first)."),
        click.option("--set", "sets", multiple=True, metavar="FIELD=VALUE",
                     help="Override a model spec field for a what-if, e.g. --set num_layers=20."),
        click.option("--chips", "-n", type=int, default=1, show_default=True,
                     help="Chips to spread the model over; without --tp/--pp/--ep roofline picks the layout."),
        click.option("--tp", type=int, default=None, help="Tensor-parallel chips per pipeline stage."),
        click.option("--pp", type=int, default=None, help="Pipeline stages."),
        click.option("--ep", type=int, default=None,
                     help="Expert-parallel chips per stage (MoE): 1, equal to --tp (experts over the TP group), or "
                          "a multiple of --tp dividing the experts (ep/tp data-parallel attention groups, one "
                          "sequence each at least; chips = ep x pp)."),
        click.option("--microbatches", type=int, default=None,
                     help="Micro-batches in flight in the pipeline (default: min(pp, batch))."),
        click.option("--link", default=None, help="Link id between chips (default: scale-up in its domain, "
                                                   "else scale-out)."),
        click.option("--breakdown", is_flag=True, help="List every operator with FLOPs, bytes, time and bound."),
        format_option,
    ]
    for option in reversed(options):
        func = option(func)
    return func


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


@cli.command()
@model_options
@click.option("--batch", "-b", type=int, default=1, show_default=True, help="Sequences decoded together.")
@click.option("--context", type=int, default=1024, show_default=True, help="Tokens already in each KV cache.")
@cost_options
@speculative_options
def decode(model, hardware, mode, calibration, weights_dtype, kv_dtype, activations_dtype, memory_tier, sets, chips,
           tp, pp, ep, microbatches, link, breakdown, fmt, batch, context, price, power, pue, draft, draft_tokens,
           acceptance, draft_weights_dtype):
    """Time of one decode step, tokens/s per user and in aggregate, what bounds it, and its cost.

    With --speculative, also the speculative round: tokens per step, speed-up, tokens/s with speculation.
    """
    common = dict(batch=batch, context=context, mode=mode, weights_dtype=weights_dtype, kv_dtype=kv_dtype,
                  activations_dtype=activations_dtype, overrides=parse_sets(sets), memory_tier=memory_tier,
                  calibration=calibration, **cost_request(price, power, pue))
    request = speculative_request(draft, draft_tokens, acceptance, draft_weights_dtype)
    if request is None:
        result = api.decode(model, hardware, chips=chips, tp=tp, pp=pp, ep=ep, microbatches=microbatches, link=link,
                            **common)
        emit_step(result, fmt, breakdown, DECODE_KEYS)
        return
    spec = speculative.decode(model, hardware, **request, **common, chips=chips, tp=tp, pp=pp, ep=ep,
                              microbatches=microbatches, link=link)
    emit_step(spec.base, fmt, breakdown, DECODE_KEYS, extra=speculative_fields(spec))


@cli.command()
@model_options
@click.option("--prompt", "-p", type=int, required=True, help="Prompt length in tokens.")
@click.option("--batch", "-b", type=int, default=1, show_default=True, help="Prompts processed together.")
@cost_options
def prefill(model, hardware, mode, calibration, weights_dtype, kv_dtype, activations_dtype, memory_tier, sets, chips,
            tp, pp, ep, microbatches, link, breakdown, fmt, prompt, batch, price, power, pue):
    """Time of the prefill of a prompt (time to first token), prompt tokens/s and their cost."""
    result = api.prefill(model, hardware, prompt=prompt, batch=batch, mode=mode, weights_dtype=weights_dtype,
                         kv_dtype=kv_dtype, activations_dtype=activations_dtype, overrides=parse_sets(sets),
                         memory_tier=memory_tier, chips=chips, tp=tp, pp=pp, ep=ep, microbatches=microbatches,
                         link=link, calibration=calibration, **cost_request(price, power, pue))
    emit_step(result, fmt, breakdown, ("time_s", "tokens_per_s", "bound", "weight_bytes", "kv_cache_bytes", "fits"))
