"""The Python API: decode and prefill of one model on one chip, by id or spec object.

    >>> import roofline
    >>> r = roofline.decode("llama-3.1-8b", "h100-sxm", batch=1, context=1024)
    >>> r.tokens_per_s_per_user

Inputs are checked here (the edge); the arithmetic is in operators, memory and step.
"""
import math
import numbers

from . import dtypes as dtype_table
from .calibration import with_calibration
from .errors import RooflineError
from .hardware import Hardware, load_hardware
from .memory import footprint
from .models import Model, load_model, with_dtypes
from .operators import decode_operators, prefill_operators
from .results import OperatorRow, StepResult
from .step import MODES, ceilings, pass_time, time_by_bound, time_operators


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


def _context_note(model, context):
    if context > model.max_context:
        return (f"warning: context {context} exceeds {model.id}'s maximum of {model.max_context} tokens; "
                "answered as if the model allowed it")
    return None


def _step_result(phase, model, hardware, mode_note, mode, batch, context, operators, tokens, memory,
                 extra_notes=()):
    ceiling = ceilings(hardware, mode)
    timed = time_operators(operators, ceiling)
    total = float(pass_time(timed, ceiling, model.num_layers))
    split = time_by_bound(timed, ceiling, model.num_layers)
    bound = max(split, key=split.get)
    capacity = hardware.mem_capacity
    fits = memory["total"] <= capacity
    notes = [n for n in (mode_note, *extra_notes) if n]
    if not fits:
        notes.append(f"does not fit: needs {memory['total'] / 1e9:.1f} GB, {hardware.id} has "
                     f"{capacity / 1e9:.1f} GB ({memory['total'] / capacity:.2f}x); the time is that of a "
                     "hypothetical chip with enough memory")
    rows = [OperatorRow(op.name, op.group, op.count, float(op.count * op.flops), float(op.count * op.bytes),
                        float(op.flops / op.bytes) if op.bytes else math.inf, float(op.total_time),
                        str(op.bound)) for op in timed]
    per_user = 1 / total if phase == "decode" else context / total
    return StepResult(
        phase=phase, model=model.id, hardware=hardware.id, mode=ceiling.mode, batch=batch, context=context,
        time_s=total, tokens_per_s_per_user=per_user, tokens_per_s=batch * per_user, bound=bound,
        weight_bytes=float(memory["weights"]), kv_cache_bytes=float(memory["kv_cache"]),
        activation_bytes=float(memory["activations"]), memory_needed_bytes=float(memory["total"]),
        capacity_bytes=capacity, fits=bool(fits), memory_time_s=split["memory"], compute_time_s=split["compute"],
        overhead_time_s=split["overhead"], dtypes=dict(model.dtypes), notes=notes, operators=rows)


def decode(model, hardware, batch=1, context=1024, mode=None, weights_dtype=None, kv_dtype=None,
           activations_dtype=None, overrides=None, memory_tier=None,
           calibration=None):
    """One decode step of `batch` sequences with `context` tokens cached each, on one chip.

    Returns a StepResult: time_s (= step time), tokens_per_s_per_user = 1 / t_step,
    tokens_per_s = batch / t_step, the bound, the memory needed and whether it fits.
    `calibration` (a calibration file, id or Calibration) replaces the chip's default calibration.
    """
    batch, context = positive_int(batch, "batch"), positive_int(context, "context")
    model = resolve_model(model, overrides, weights_dtype, kv_dtype, activations_dtype)
    hardware = resolve_hardware(hardware, memory_tier)
    hardware = with_calibration(hardware, calibration)
    mode, note = choose_mode(hardware, mode)
    operators = decode_operators(model, batch, context, hardware.peak_flops)
    memory = footprint(model, batch, context + 1)
    return _step_result("decode", model, hardware, note, mode, batch, context, operators, batch, memory,
                        [_context_note(model, context + 1)])


def prefill(model, hardware, prompt=1024, batch=1, mode=None, weights_dtype=None, kv_dtype=None,
            activations_dtype=None, overrides=None, memory_tier=None,
            calibration=None):
    """The prefill of `batch` prompts of `prompt` tokens each, on one chip.

    Returns a StepResult whose time_s is the time to first token (without queueing) and
    tokens_per_s the prompt tokens processed per second.
    `calibration` (a calibration file, id or Calibration) replaces the chip's default calibration.
    """
    batch, prompt = positive_int(batch, "batch"), positive_int(prompt, "prompt")
    model = resolve_model(model, overrides, weights_dtype, kv_dtype, activations_dtype)
    hardware = resolve_hardware(hardware, memory_tier)
    hardware = with_calibration(hardware, calibration)
    mode, note = choose_mode(hardware, mode)
    operators = prefill_operators(model, batch, prompt, hardware.peak_flops)
    memory = footprint(model, batch, prompt, tokens_in_flight=batch * prompt)
    return _step_result("prefill", model, hardware, note, mode, batch, prompt, operators, batch * prompt, memory,
                        [_context_note(model, prompt)])


def check_dtype(name, what):
    """Validate a dtype name from the user (None passes)."""
    return None if name is None else dtype_table.check(name, what)
