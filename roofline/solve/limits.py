"""The other inverse questions: the largest batch, the longest context, the bandwidth a target
needs, and the largest model that fits. Each quantity is one the forward model is monotone in,
found by bisection (or in closed form), with the binding constraint and the margins."""
import math
from dataclasses import replace

from .. import dtypes
from ..scenario import positive_int, resolve_hardware
from ..deployment import evaluate
from ..errors import RooflineError
from ..parallel import choose_links
from .common import (BINDING_TEXT, SolveResult, _binding, _bisect_int, _layout_for, _positive_target, _result_dict,
                     _setup)

def solve_batch(model, hardware, tokens_per_s_per_user, context=1024, chips=1, tp=None, pp=None, mode=None,
                weights_dtype=None, kv_dtype=None, overrides=None, memory_tier=None, link=None, max_batch=65536):
    """The largest batch that keeps a per-user decode speed and fits memory (SolveResult)."""
    target = _positive_target(tokens_per_s_per_user, "tokens-per-s-per-user")
    if target is None:
        raise RooflineError("give --tokens-per-s-per-user")
    context, chips = positive_int(context, "context"), positive_int(chips, "chips")
    model, hardware, ceiling, assumptions = _setup(model, hardware, mode, weights_dtype, kv_dtype, overrides,
                                                   memory_tier, link)

    def at(batch):
        layout = _layout_for(model, hardware, batch, chips, tp, pp, ceiling, context, link)
        return layout, evaluate("decode", model, hardware, batch, context, layout, ceiling, link)

    def fits(batch):
        return at(batch)[1].per_chip_memory["total"] <= hardware.mem_capacity

    def fast(batch):
        return 1 / at(batch)[1].cycle_time >= target

    by_memory = _bisect_int(1, max_batch, fits)
    by_speed = _bisect_int(1, max_batch, fast)
    if by_memory is None or by_speed is None:
        layout, ev = at(1)
        reason = ("the model does not fit even at batch 1" if by_memory is None else
                  f"even batch 1 reaches only {1 / ev.cycle_time:.4g} tokens/s per user "
                  f"(bound by {BINDING_TEXT[_binding(ev)]})")
        return SolveResult("batch", None, False, "capacity" if by_memory is None else _binding(ev),
                           margins={"tokens_per_s_per_user": 1 / ev.cycle_time / target}, layout=layout.describe(),
                           why=[reason], assumptions=assumptions)
    batch = min(by_memory, by_speed)
    layout, ev = at(batch)
    binding = "capacity" if by_memory <= by_speed else "tokens_per_s_per_user"
    margins = {"capacity": hardware.mem_capacity / ev.per_chip_memory["total"],
               "tokens_per_s_per_user": 1 / ev.cycle_time / target}
    why = [f"batch {batch}: {1 / ev.cycle_time:.4g} tokens/s per user, {batch / ev.cycle_time:.4g} in aggregate",
           f"memory allows batch {by_memory}; the per-user target allows batch {by_speed}"]
    return SolveResult("batch", batch, True, binding, margins=margins, layout=layout.describe(), why=why,
                       assumptions=assumptions, result=_result_dict(model, hardware, layout, ev, batch, context))


def solve_context(model, hardware, batch=1, chips=1, tp=None, pp=None, mode=None, weights_dtype=None, kv_dtype=None,
                  overrides=None, memory_tier=None, link=None, tokens_per_s_per_user=None):
    """The longest context that fits memory (and keeps a per-user speed, if given) (SolveResult)."""
    target = _positive_target(tokens_per_s_per_user, "tokens-per-s-per-user")
    batch, chips = positive_int(batch, "batch"), positive_int(chips, "chips")
    model, hardware, ceiling, assumptions = _setup(model, hardware, mode, weights_dtype, kv_dtype, overrides,
                                                   memory_tier, link)
    layout = _layout_for(model, hardware, batch, chips, tp, pp, ceiling, 1024, link)

    def at(context):
        return evaluate("decode", model, hardware, batch, context, layout, ceiling, link)

    by_memory = _bisect_int(1, 1 << 34, lambda c: at(c).per_chip_memory["total"] <= hardware.mem_capacity)
    by_speed = _bisect_int(1, 1 << 34, lambda c: 1 / at(c).cycle_time >= target) if target else None
    limits = {"capacity": by_memory}
    if target:
        limits["tokens_per_s_per_user"] = by_speed
    if any(v is None for v in limits.values()):
        return SolveResult("context", None, False, next(k for k, v in limits.items() if v is None),
                           layout=layout.describe(), why=["not met even with a context of 1 token"],
                           assumptions=assumptions)
    binding = min(limits, key=limits.get)
    context = limits[binding]
    ev = at(context)
    why = [f"context {context} tokens: KV cache {ev.per_chip_memory['kv_cache'] / 1e9:.4g} GB per chip"]
    if context > model.max_context:
        why.append(f"beyond {model.id}'s trained maximum of {model.max_context} tokens")
    margins = {"capacity": hardware.mem_capacity / ev.per_chip_memory["total"]}
    if target:
        margins["tokens_per_s_per_user"] = 1 / ev.cycle_time / target
    return SolveResult("context", context, True, binding, margins=margins, layout=layout.describe(), why=why,
                       assumptions=assumptions, result=_result_dict(model, hardware, layout, ev, batch, context))


def solve_bandwidth(model, hardware, tokens_per_s_per_user, batch=1, context=1024, chips=1, tp=None, pp=None,
                    mode=None, weights_dtype=None, kv_dtype=None, overrides=None, memory_tier=None, link=None,
                    resource="memory"):
    """The memory (or link) bandwidth per chip a per-user decode speed needs (SolveResult)."""
    target = _positive_target(tokens_per_s_per_user, "tokens-per-s-per-user")
    if target is None:
        raise RooflineError("give --tokens-per-s-per-user")
    if resource not in ("memory", "link"):
        raise RooflineError(f"resource must be memory or link, got {resource!r}")
    batch, context, chips = positive_int(batch, "batch"), positive_int(context, "context"), positive_int(chips, "chips")
    model, hardware, ceiling, assumptions = _setup(model, hardware, mode, weights_dtype, kv_dtype, overrides,
                                                   memory_tier, link)
    layout = _layout_for(model, hardware, batch, chips, tp, pp, ceiling, context, link)
    if resource == "link" and layout.chips == 1:
        raise RooflineError("a link bandwidth needs more than one chip: give --chips, --tp or --pp")
    scaled = _bandwidth_scaler(hardware, ceiling, resource, layout, link)

    def speed(factor):
        hw, ceil, _ = scaled(factor)
        return 1 / evaluate("decode", model, hw, batch, context, layout, ceil, link).cycle_time

    if speed(1e6) < target:
        ev = evaluate("decode", model, hardware, batch, context, layout, ceiling, link)
        return SolveResult("bandwidth", None, False, _binding(ev), layout=layout.describe(), why=[
            f"even unlimited {resource} bandwidth does not reach {target:g} tokens/s per user: other terms "
            f"(compute, fixed costs, {'memory' if resource == 'link' else 'link'} time) take "
            f"{1e6 / speed(1e6):.4g} us per token"], assumptions=assumptions)
    low, high = 1e-6, 1e6
    for _ in range(200):
        mid = math.sqrt(low * high)
        low, high = (low, mid) if speed(mid) >= target else (mid, high)
        if high / low < 1 + 1e-6:
            break
    base = scaled(1.0)[2]
    needed = base * high
    return SolveResult("bandwidth", needed, True, "tokens_per_s_per_user",
                       margins={f"{resource}_bandwidth_vs_spec": base / needed}, layout=layout.describe(),
                       why=[f"{needed / 1e9:.4g} GB/s of {resource} bandwidth per chip ({high:.3g}x the "
                            f"{base / 1e9:.4g} GB/s of {hardware.id}'s {'memory' if resource == 'memory' else 'link'})"],
                       assumptions=assumptions)


def _bandwidth_scaler(hardware, ceiling, resource, layout, link):
    """factor -> (hardware, ceiling, base bandwidth) with the memory or link bandwidth scaled."""
    if resource == "memory":
        def scaled(factor):
            memory = (replace(hardware.memory[0], bandwidth=hardware.memory[0].bandwidth * factor),) \
                + hardware.memory[1:]
            return replace(hardware, memory=memory), replace(ceiling, bandwidth=ceiling.bandwidth * factor), \
                hardware.mem_bandwidth
        return scaled
    tp_link, pp_link, ep_link = choose_links(hardware, layout, link)
    used = {cl.link.id for cl in (tp_link, pp_link, ep_link) if cl is not None}

    def scaled(factor):
        links = tuple(replace(cl, link=replace(cl.link, bandwidth=cl.link.bandwidth * factor))
                      if cl.link.id in used else cl for cl in hardware.links)
        return replace(hardware, links=links), ceiling, (tp_link or ep_link or pp_link).bandwidth
    return scaled


def solve_params(hardware, chips=1, weights_dtype="bf16", reserve=0.1, memory_tier=None):
    """The largest parameter count whose weights fit `chips` chips at a dtype (SolveResult).

    .. math:: N_{params} = \\frac{(1 - r) \\, n \\, C}{b_w}

    with r the share of memory reserved for KV cache and activations [1], n chips, C capacity [B].
    """
    chips = positive_int(chips, "chips")
    if not 0 <= reserve < 1:
        raise RooflineError(f"reserve must be in [0, 1), got {reserve!r}")
    hardware = resolve_hardware(hardware, memory_tier)
    per_value = dtypes.bytes_per_value(dtypes.check(weights_dtype, "weights dtype"))
    params = (1 - reserve) * chips * hardware.mem_capacity / per_value
    return SolveResult("params", params, True, "capacity", margins={}, why=[
        f"{chips} x {hardware.mem_capacity / 1e9:.4g} GB, {reserve:.0%} kept for KV cache and activations, at "
        f"{per_value * 8:g} bits per weight: {params / 1e9:.4g}B parameters"],
        assumptions=[f"{weights_dtype} weights", f"{reserve:.0%} of memory reserved"])
