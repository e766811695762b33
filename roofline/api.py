"""The Python API: decode and prefill of one model on one chip, by id or spec object.

    >>> import roofline
    >>> r = roofline.decode("llama-3.1-8b", "h100-sxm", batch=1, context=1024)
    >>> r.tokens_per_s_per_user

Inputs are checked here (the edge); the arithmetic is in operators, memory and step.
"""
import math
import numbers

from . import cost
from .binding import binding
from .calibration import with_calibration
from .errors import RooflineError
from .hardware import Hardware, load_hardware
from .deployment import fastest
from .models import Model, load_model, with_dtypes
from .parallel import candidate_layouts, make_layout
from .placement import fits as placement_fits, layout_notes
from .results import OperatorRow, StepResult
from .step import MODES, ceilings


def positive_int(value, name):
    """`value` as an int >= 1, or RooflineError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != int(value) or value < 1:
        raise RooflineError(f"{name} must be a whole number of at least 1, got {value!r}")
    return int(value)


def resolve_model(model, overrides=None, weights_dtype=None, kv_dtype=None, activations_dtype=None,
                  experts_dtype=None):
    """A Model from an id, a path or a Model, with overrides and dtype changes applied."""
    if not isinstance(model, Model):
        model = load_model(model, overrides)
    elif overrides:
        raise RooflineError("overrides apply to a model id or file, not to a Model object")
    return with_dtypes(model, weights=weights_dtype, kv_cache=kv_dtype, activations=activations_dtype,
                       experts=experts_dtype)


def resolve_hardware(hardware, memory_tier=None):
    """A Hardware from an id, a path or a Hardware, with the weight-holding tier chosen."""
    if not isinstance(hardware, Hardware):
        hardware = load_hardware(hardware)
    return hardware.with_tier(memory_tier) if memory_tier else hardware


def choose_mode(hardware, mode):
    """The mode to use and a note: calibrated where the chip has calibration, else ideal."""
    if mode is not None and mode not in MODES:
        raise RooflineError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "ideal":
        return "ideal", None
    if hardware.calibration is None:
        note = (f"{hardware.id} has no calibration: ideal mode (datasheet peaks, no fixed costs), "
                "a lower bound on time")
        return "ideal", note
    return "calibrated", None


def _context_note(model, context, new_tokens=0):
    """A warning when `context` cached tokens plus the `new_tokens` of this step exceed the maximum."""
    if context + new_tokens > model.max_context:
        return (f"warning: context {context}{f' + {new_tokens} new' if new_tokens else ''} exceeds {model.id}'s "
                f"maximum of {model.max_context} tokens; answered as if the model allowed it")
    return None


def _layouts(model, hardware, batch, chips, tp, pp, ep, microbatches):
    """The layouts to evaluate: the one asked for (any of tp, pp, ep given), or every valid split of `chips`."""
    if tp is None and pp is None and ep is None:
        chips = positive_int(chips, "chips")
        if chips == 1:
            return [make_layout(model, batch, microbatches=microbatches)], False
        if microbatches is not None:
            raise RooflineError("--microbatches needs an explicit layout (--tp, --pp or --ep)")
        return candidate_layouts(model, hardware, chips, batch), True
    tp = positive_int(1 if tp is None else tp, "tp")
    pp = positive_int(1 if pp is None else pp, "pp")
    ep = None if ep is None else positive_int(ep, "ep")
    layout = make_layout(model, batch, tp=tp, pp=pp, ep=ep, microbatches=microbatches)
    if chips is not None and chips != 1 and positive_int(chips, "chips") != layout.chips:
        if layout.attention_groups > 1:
            product = f"ep x pp = {layout.ep} x {pp}"
        else:
            product = f"tp x pp = {tp} x {pp}"
        raise RooflineError(f"--chips {chips} does not equal {product} = {layout.chips}")
    return [layout], False


def _step_result(phase, model, hardware, mode, batch, length, chips, tp, pp, ep, microbatches, link, notes,
                 pricing=None):
    """Evaluate a phase on a deployment and package it as a StepResult."""
    ceiling = ceilings(hardware, mode)
    if link is not None:
        hardware.link(link_id=link)
    layouts, auto = _layouts(model, hardware, batch, chips, tp, pp, ep, microbatches)
    layout, ev = fastest(phase, model, hardware, batch, length, layouts, ceiling, link)
    notes = [n for n in notes if n]
    if auto:
        notes += layout_notes(phase, model, hardware, batch, length, layout, ev, len(layouts), ceiling, link)
    if layout.attention_groups > 1:
        notes.append(f"expert all-to-all over {ev.ep_link.link.id} between the {layout.ep} chips of a stage; "
                     f"{layout.attention_groups} attention groups of {layout.tp} chip(s) each serve "
                     f"about {batch / layout.attention_groups:.4g} of the {batch} sequences")
    memory = ev.per_chip_memory
    capacity = hardware.mem_capacity
    fits = placement_fits(memory, hardware)
    if not fits:
        notes.append(f"does not fit: needs {memory['total'] / 1e9:.3g} GB per chip, {hardware.id} has "
                     f"{capacity / 1e9:.3g} GB ({memory['total'] / capacity:.2f}x); the time is that of a "
                     "hypothetical chip with enough memory")
    rows = [OperatorRow(op.name, op.group, op.count, float(op.count * op.flops), float(op.count * op.bytes),
                        float(op.flops / op.bytes) if op.bytes else math.inf, float(op.total_time), str(op.bound))
            for op in ev.timed]
    rows += [OperatorRow(c.name, c.group, c.count, 0.0, float(c.count * c.bytes), 0.0, float(c.total_time), c.bound)
             for c in ev.comms]
    if phase == "decode":
        time_s, per_user, aggregate = ev.cycle_time, 1 / ev.cycle_time, batch / ev.cycle_time
    else:
        time_s, per_user, aggregate = ev.token_time, length / ev.token_time, batch * length / ev.cycle_time
    split = ev.split
    economics, cost_notes = (pricing or cost.pricing(hardware)).fields(aggregate, chips=layout.chips)
    notes += cost_notes
    return StepResult(
        phase=phase, model=model.id, hardware=hardware.id, mode=ceiling.mode, batch=batch, context=length,
        time_s=time_s, tokens_per_s_per_user=per_user, tokens_per_s=aggregate, bound=binding(split),
        weight_bytes=float(memory["weights"]), kv_cache_bytes=float(memory["kv_cache"]),
        activation_bytes=float(memory["activations"]), memory_needed_bytes=float(memory["total"]),
        capacity_bytes=capacity, fits=bool(fits), memory_time_s=split["memory"], compute_time_s=split["compute"],
        overhead_time_s=split["overhead"], link_latency_time_s=split["link latency"],
        link_bandwidth_time_s=split["link bandwidth"], chips=layout.chips, tp=layout.tp, pp=layout.pp,
        ep=layout.ep, microbatches=layout.microbatches, token_latency_s=ev.token_time,
        stage_time_s=ev.stage_time, tp_link=ev.tp_link.link.id if ev.tp_link else None,
        pp_link=ev.pp_link.link.id if ev.pp_link else None, dtypes=dict(model.dtypes), notes=notes,
        operators=rows, **economics)


def _inputs(model, hardware, mode, overrides, weights_dtype, kv_dtype, activations_dtype, memory_tier, calibration):
    """(model, hardware, mode, note) from the arguments of decode and prefill."""
    model = resolve_model(model, overrides, weights_dtype, kv_dtype, activations_dtype)
    hardware = with_calibration(resolve_hardware(hardware, memory_tier), calibration)
    mode, note = choose_mode(hardware, mode)
    return model, hardware, mode, note


def decode(model, hardware, batch=1, context=1024, mode=None, weights_dtype=None, kv_dtype=None,
           activations_dtype=None, overrides=None, memory_tier=None, chips=1, tp=None, pp=None, ep=None,
           microbatches=None, link=None, price=None, power=None, pue=1,
           calibration=None):
    """One decode step of `batch` sequences with `context` tokens cached each.

    On one chip by default; `chips` (layout chosen for per-user speed) or `tp` x `pp` (and `ep`,
    `microbatches`, `link`) spread it. Returns a StepResult: time_s between two tokens of a
    sequence, tokens_per_s_per_user = 1 / time_s, tokens_per_s = batch / time_s, the bound, the
    memory per chip and whether it fits. Weight and KV bytes are per chip. Cost and energy per
    token (roofline.cost) count every chip: `price` ("2.5 USD/hour") and `power` ("700 W") override
    the chip spec's, `pue` multiplies the power by a facility overhead factor.
    `calibration` (a calibration file, id or Calibration) replaces the chip's default calibration.
    """
    batch, context = positive_int(batch, "batch"), positive_int(context, "context")
    model, hardware, mode, note = _inputs(model, hardware, mode, overrides, weights_dtype, kv_dtype,
                                          activations_dtype, memory_tier, calibration)
    return _step_result("decode", model, hardware, mode, batch, context, chips, tp, pp, ep, microbatches, link,
                        [note, _context_note(model, context, 1)], cost.pricing(hardware, price, power, pue))


def prefill(model, hardware, prompt=1024, batch=1, mode=None, weights_dtype=None, kv_dtype=None,
            activations_dtype=None, overrides=None, memory_tier=None, chips=1, tp=None, pp=None, ep=None,
            microbatches=None, link=None, price=None, power=None, pue=1,
            calibration=None):
    """The prefill of `batch` prompts of `prompt` tokens each.

    Returns a StepResult whose time_s is the time to first token (without queueing) and
    tokens_per_s the prompt tokens processed per second.
    `calibration` (a calibration file, id or Calibration) replaces the chip's default calibration.
    """
    batch, prompt = positive_int(batch, "batch"), positive_int(prompt, "prompt")
    model, hardware, mode, note = _inputs(model, hardware, mode, overrides, weights_dtype, kv_dtype,
                                          activations_dtype, memory_tier, calibration)
    return _step_result("prefill", model, hardware, mode, batch, prompt, chips, tp, pp, ep, microbatches, link,
                        [note, _context_note(model, prompt)], cost.pricing(hardware, price, power, pue))
