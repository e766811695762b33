"""`roofline decode` and `roofline prefill`: one model on one chip."""
import click

from .. import api, speculative
from ..errors import RooflineError
from ..hardware import load_hardware, split_overrides, with_overrides
from . import cli
from .economics_options import (cost_options, cost_request, speculative_fields, speculative_options,
                                speculative_request)
from .output import COUNT, DTYPE, Section, emit_sections, emit_table, format_option

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
    emit_sections(_step_sections(result, extra or {}), fmt, data, notes=result.notes)
    if breakdown and fmt in ("table", "markdown"):
        click.echo()
        _emit_operators(result, fmt)


def _step_sections(r, extra):
    """answer, time, memory, layout, cost, assumptions (and speculative decoding) of a step result."""
    prefill = r.phase == "prefill"
    per_chip = " per chip" if r.chips > 1 else ""
    answer = Section("answer")
    if prefill:
        answer.add("time to first token", r.time_s, "s")
        answer.add("prompt tokens/s", r.tokens_per_s, "tok/s")
        if r.batch > 1:
            answer.add("prompt tokens/s per prompt", r.tokens_per_s_per_user, "tok/s")
    else:
        answer.add("time per token (one step)", r.time_s, "s")
        if r.token_latency_s is not None and not _same(r.token_latency_s, r.time_s):
            answer.add("latency of a token through all stages", r.token_latency_s, "s")
        answer.add("tokens/s per user", r.tokens_per_s_per_user, "tok/s")
        if not _same(r.tokens_per_s, r.tokens_per_s_per_user):
            answer.add(f"tokens/s, all {r.batch} users", r.tokens_per_s, "tok/s")
    answer.add("bound by", r.bound)
    answer.add("fits in memory", r.fits)

    time = Section("time (sums to the step time)" if _adds_up(r) else "time")
    if r.stage_time_s is not None and not _same(r.stage_time_s, r.time_s):
        time.add("busiest pipeline stage, per micro-batch", r.stage_time_s, "s")
    time.add("in memory-bound operators", r.memory_time_s, "s", keep_zero=False)
    time.add("in compute-bound operators", r.compute_time_s, "s", keep_zero=False)
    time.add("fixed costs (launches, sync)", r.overhead_time_s, "s", keep_zero=False)
    time.add("link latency", r.link_latency_time_s, "s", keep_zero=False)
    time.add("link bandwidth", r.link_bandwidth_time_s, "s", keep_zero=False)

    memory = Section(f"memory{per_chip}")
    memory.add("weights", r.weight_bytes, "B")
    memory.add("KV cache", r.kv_cache_bytes, "B", keep_zero=False)
    memory.add("activations", r.activation_bytes, "B", keep_zero=False)
    memory.add("needed", r.memory_needed_bytes, "B")
    memory.add("capacity", r.capacity_bytes, "B")

    layout = Section("layout")
    if r.chips > 1:
        layout.add("chips", r.chips).add("tensor parallel (TP)", r.tp).add("pipeline stages (PP)", r.pp)
        if r.ep > 1:
            layout.add("expert parallel (EP)", r.ep)
        if r.pp > 1:
            layout.add("micro-batches", r.microbatches)
        layout.add("TP link", r.tp_link if r.tp > 1 else None).add("PP link", r.pp_link if r.pp > 1 else None)

    cost = Section("cost" + (f", all {r.chips} chips" if r.chips > 1 else ""))
    cost.add("per million tokens", r.usd_per_mtok, "USD/Mtok")
    cost.add("energy per token", r.joules_per_token, "J/tok")
    cost.add("tokens per kWh", r.tokens_per_kwh, "tok/kWh")
    cost.add("power", r.power_w, "W")

    assumptions = Section("assumptions")
    assumptions.add("model", r.model).add("chip", r.hardware).add("mode", r.mode)
    assumptions.add("prompts" if prefill else "batch (sequences)", r.batch)
    assumptions.add("prompt tokens" if prefill else "context (cached tokens)", r.context)
    assumptions.add("dtypes", ", ".join(f"{k}={v}" for k, v in r.dtypes.items()))

    sections = [answer, time, memory, layout, cost, assumptions]
    if extra:
        sections.insert(1, _speculative_section(extra))
    return sections


def _speculative_section(extra):
    spec = Section("speculative decoding")
    spec.add("draft", extra.get("draft")).add("tokens drafted per round", extra.get("draft_tokens"))
    spec.add("acceptance", extra.get("acceptance")).add("tokens per round", extra.get("tokens_per_step"))
    spec.add("draft step", extra.get("draft_step_time_s"), "s").add("verify step", extra.get("verify_time_s"), "s")
    spec.add("round", extra.get("round_time_s"), "s")
    speedup = extra.get("speedup")
    spec.add("speed-up", None if speedup is None else f"{speedup:.3g}x")
    spec.add("tokens/s per user", extra.get("speculative_tokens_per_s_per_user"), "tok/s")
    spec.add("tokens/s, all users", extra.get("speculative_tokens_per_s"), "tok/s")
    spec.add("cost per million tokens", extra.get("speculative_usd_per_mtok"), "USD/Mtok")
    spec.add("energy per token", extra.get("speculative_joules_per_token"), "J/tok")
    spec.add("memory needed", extra.get("speculative_memory_needed_bytes"), "B")
    spec.add("fits in memory", extra.get("speculative_fits"))
    return spec


def _same(a, b):
    return a is not None and b is not None and abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1e-30)


def _parts(r):
    return (r.memory_time_s, r.compute_time_s, r.overhead_time_s, r.link_latency_time_s, r.link_bandwidth_time_s)


def _adds_up(r):
    return _same(sum(_parts(r)), r.time_s)


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
