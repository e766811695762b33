"""The Python API: decode and prefill of a model on one or many chips, by id or spec object.

    >>> import roofline
    >>> r = roofline.decode("llama-3.1-8b", "h100-sxm", batch=1, context=1024)
    >>> r.tokens_per_s_per_user

Each function builds a Scenario (roofline.scenario.build: every input checked there, once),
evaluates it through the one step-time path and packages the answer as a StepResult.
"""
from . import placement
from .binding import binding
from .display import number
from .errors import RooflineError
from .results import OperatorRow, StepResult
from .scenario import Scenario, build, evaluate


def step_result(scenario, evaluation=None):
    """The StepResult of a scenario (evaluated here unless its Evaluation is given)."""
    s = scenario
    ev = evaluate(s) if evaluation is None else evaluation
    layout, model, hardware = s.layout, s.model, s.hardware
    notes = list(s.notes)
    if s.candidates:
        notes += placement.layout_notes(s.phase, model, hardware, s.batch, s.length, layout, ev, s.candidates,
                                        s.ceiling, s.link)
    if layout.attention_groups > 1:
        notes.append(f"expert all-to-all over {ev.ep_link.link.id} between the {layout.ep} chips of a stage; "
                     f"{layout.attention_groups} attention groups of {layout.tp} chip(s) each serve "
                     f"about {number(s.batch / layout.attention_groups)} of the {s.batch} sequences")
    memory = ev.per_chip_memory
    capacity = hardware.mem_capacity
    fits = placement.fits(memory, hardware)
    if not fits:
        notes.append(f"does not fit: needs {memory['total'] / 1e9:.3g} GB per chip, {hardware.id} has "
                     f"{capacity / 1e9:.3g} GB ({memory['total'] / capacity:.2f}x); the time is that of a "
                     "hypothetical chip with enough memory")
    rows = [OperatorRow(op.name, op.group, op.count, float(op.count * op.flops), float(op.count * op.bytes),
                        float(op.flops / op.bytes) if op.bytes else float("inf"), float(op.total_time),
                        str(op.bound)) for op in ev.timed]
    rows += [OperatorRow(c.name, c.group, c.count, 0.0, float(c.count * c.bytes), 0.0, float(c.total_time),
                         c.bound) for c in ev.comms]
    if s.phase == "decode":
        time_s = float(ev.cycle_time)
        per_user, aggregate = s.query_tokens / time_s, s.batch * s.query_tokens / time_s
    else:
        time_s = float(ev.token_time)
        per_user, aggregate = s.length / time_s, s.batch * s.length / float(ev.cycle_time)
    split = ev.split
    hidden = float(ev.hidden_latency + ev.hidden_bandwidth)
    if hidden > 0:
        notes.append(f"overlap: {hidden * 1e6:.4g} us of the MoE all-to-all runs under the shared experts "
                     "(hidden from the step time)")
    elif s.overlap and s.mode != "ideal":
        notes.append("overlap: nothing to hide: this layout has no expert all-to-all under shared experts "
                     "(it needs ep > tp and an MoE model with shared experts)")
    economics, cost_notes = s.pricing.fields(aggregate, chips=layout.chips)
    notes += cost_notes
    return StepResult(
        phase=s.phase, model=model.id, hardware=hardware.id, mode=s.mode, batch=s.batch, context=s.length,
        time_s=time_s, tokens_per_s_per_user=per_user, tokens_per_s=aggregate, bound=binding(split),
        weight_bytes=float(memory["weights"]), kv_cache_bytes=float(memory["kv_cache"]),
        activation_bytes=float(memory["activations"]), memory_needed_bytes=float(memory["total"]),
        capacity_bytes=capacity, fits=bool(fits), memory_time_s=float(split["memory"]),
        compute_time_s=float(split["compute"]), overhead_time_s=float(split["overhead"]),
        link_latency_time_s=float(split["link latency"]), link_bandwidth_time_s=float(split["link bandwidth"]),
        chips=layout.chips, tp=layout.tp, pp=layout.pp, ep=layout.ep, microbatches=layout.microbatches,
        moe_tp=layout.moe_tp if model.moe else None, moe_ep=layout.moe_ep if model.moe else None,
        collectives=s.collectives,
        token_latency_s=float(ev.token_time), stage_time_s=float(ev.stage_time),
        tp_link=ev.tp_link.link.id if ev.tp_link else None, pp_link=ev.pp_link.link.id if ev.pp_link else None,
        calibration_source=s.calibration_source, dtypes=dict(model.dtypes), notes=notes, operators=rows,
        **economics)


def decode(model, hardware=None, batch=1, context=1024, **options):
    """One decode step of `batch` sequences with `context` tokens cached each (a StepResult).

    `model` and `hardware` are ids, spec files or spec objects, or `model` is a Scenario (then
    nothing else is given). `options` are those of roofline.scenario.build: chips, tp, pp, ep,
    microbatches, link, mode, calibration, weights_dtype, kv_dtype, activations_dtype,
    experts_dtype, overrides, memory_tier, price, power, pue. The result: time_s between two
    tokens of a sequence, tokens_per_s_per_user = 1 / time_s, tokens_per_s = batch / time_s, the
    bound, the memory per chip and whether it fits, $/Mtok and J/token over every chip.
    """
    return step_result(_scenario(model, hardware, "decode", batch, {"context": context}, options))


def prefill(model, hardware=None, prompt=1024, batch=1, **options):
    """The prefill of `batch` prompts of `prompt` tokens each (a StepResult): time_s is the time to
    first token (without queueing), tokens_per_s the prompt tokens processed per second. Options
    as for decode."""
    return step_result(_scenario(model, hardware, "prefill", batch, {"prompt": prompt}, options))


def _scenario(model, hardware, phase, batch, length, options):
    if isinstance(model, Scenario):
        if hardware is not None or options:
            raise RooflineError("a Scenario carries its own chip and options; give it alone")
        if model.phase != phase:
            raise RooflineError(f"this Scenario is a {model.phase}, not a {phase}")
        return model
    return build(model, hardware, phase, batch=batch, **length, **options)
