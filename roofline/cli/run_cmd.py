"""`roofline decode` and `roofline prefill`: one model on one chip."""
import click

from .. import api, speculative
from ..errors import RooflineError
from ..hardware import load_hardware, split_overrides, with_overrides
from . import cli
from .economics_options import (cost_options, cost_request, speculative_fields, speculative_options,
                                speculative_request)
from ..display import step_sections
from .output import COUNT, DTYPE, emit_sections, emit_table, format_option

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


def apply_sets(hardware, sets, memory_tier=None):
    """(model overrides, chip) from --set pairs: `hardware.FIELD=VALUE` changes the chip (loaded here,
    with `memory_tier` moved first so that memory_* fields address the tier that holds the
    weights), other pairs the model. The chip stays an id when no pair addresses it."""
    model_sets, chip_sets = split_overrides(parse_sets(sets))
    if not chip_sets:
        return model_sets, hardware, memory_tier
    chip = load_hardware(hardware)
    chip = chip.with_tier(memory_tier) if memory_tier else chip
    return model_sets, with_overrides(chip, chip_sets), None


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
        click.option("--weights-dtype", type=DTYPE, default=None, help="Storage dtype of the weights (and experts)."),
        click.option("--kv-dtype", type=DTYPE, default=None, help="Storage dtype of the KV cache."),
        click.option("--activations-dtype", type=DTYPE, default=None, help="Dtype of activations."),
        click.option("--memory-tier", default=None, help="Memory tier that holds the weights (default: the first)."),
        click.option("--set", "sets", multiple=True, metavar="FIELD=VALUE",
                     help="Override a model or chip field for a what-if, e.g. --set num_layers=20, "
                          "--set hardware.memory_bandwidth='6 TB/s' (chip fields: memory_bandwidth, "
                          "memory_capacity, power, price, peak_flops.DTYPE; each with its unit)."),
        click.option("--chips", "-n", type=COUNT, default=1, show_default=True,
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


@cli.command()
@model_options
@click.option("--batch", "-b", type=COUNT, default=1, show_default=True, help="Sequences decoded together.")
@click.option("--context", type=COUNT, default=1024, show_default=True, help="Tokens already in each KV cache.")
@cost_options
@speculative_options
def decode(model, hardware, mode, calibration, weights_dtype, kv_dtype, activations_dtype, memory_tier, sets, chips,
           tp, pp, ep, microbatches, link, breakdown, fmt, batch, context, price, power, pue, draft, draft_tokens,
           acceptance, draft_weights_dtype):
    """Time of one decode step, tokens/s per user and in aggregate, what bounds it, and its cost.

    With --speculative, also the speculative round: tokens per step, speed-up, tokens/s with speculation.
    """
    overrides, hardware, memory_tier = apply_sets(hardware, sets, memory_tier)
    common = dict(batch=batch, context=context, mode=mode, weights_dtype=weights_dtype, kv_dtype=kv_dtype,
                  activations_dtype=activations_dtype, overrides=overrides, memory_tier=memory_tier,
                  calibration=calibration, **cost_request(price, power, pue))
    request = speculative_request(draft, draft_tokens, acceptance, draft_weights_dtype)
    if request is None:
        result = api.decode(model, hardware, chips=chips, tp=tp, pp=pp, ep=ep, microbatches=microbatches, link=link,
                            **common)
        emit_step(result, fmt, breakdown, DECODE_KEYS)
        return
    if chips != 1 or any(v is not None for v in (tp, pp, ep, microbatches, link)):
        raise RooflineError("--speculative models one chip; drop --chips, --tp, --pp, --ep, --microbatches and --link")
    spec = speculative.decode(model, hardware, **request, **common)
    emit_step(spec.base, fmt, breakdown, DECODE_KEYS, extra=speculative_fields(spec))


@cli.command()
@model_options
@click.option("--prompt", "-p", type=COUNT, required=True, help="Prompt length in tokens.")
@click.option("--batch", "-b", type=COUNT, default=1, show_default=True, help="Prompts processed together.")
@cost_options
def prefill(model, hardware, mode, calibration, weights_dtype, kv_dtype, activations_dtype, memory_tier, sets, chips,
            tp, pp, ep, microbatches, link, breakdown, fmt, prompt, batch, price, power, pue):
    """Time of the prefill of a prompt (time to first token), prompt tokens/s and their cost."""
    overrides, hardware, memory_tier = apply_sets(hardware, sets, memory_tier)
    result = api.prefill(model, hardware, prompt=prompt, batch=batch, mode=mode, weights_dtype=weights_dtype,
                         kv_dtype=kv_dtype, activations_dtype=activations_dtype, overrides=overrides,
                         memory_tier=memory_tier, chips=chips, tp=tp, pp=pp, ep=ep, microbatches=microbatches,
                         link=link, calibration=calibration, **cost_request(price, power, pue))
    emit_step(result, fmt, breakdown, ("time_s", "tokens_per_s", "bound", "weight_bytes", "kv_cache_bytes", "fits"))
