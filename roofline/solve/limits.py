"""The other inverse questions: the largest batch, the longest context, the bandwidth a target
needs, and the largest model that fits. Each quantity is one the forward model is monotone in,
found by bisection (or in closed form), with the binding constraint and the margins."""
import math
from dataclasses import replace

from .. import dtypes
from ..binding import BINDING_TEXT, binding
from ..deployment import evaluate
from ..display import number
from ..errors import RooflineError
from ..parallel import choose_links, for_batch
from ..placement import best_layout, decode_memory, fits, most_sequences
from ..scenario import positive_int, resolve_hardware
from .common import (SolveResult, _bisect_int, _last_meeting, _positive_target, _result_dict, assumptions, families,
                     layout_given, question)


def solve_batch(model, hardware=None, tokens_per_s_per_user=None, context=1024, max_batch=65536, **options):
    """The largest batch that keeps a per-user decode speed and fits memory (SolveResult).

    `model` is a Scenario (its batch is ignored), or a model id with `hardware` and the options of
    scenario.build. Without a layout given (--tp/--pp/--ep), every split of the chips is searched:
    for each, the largest batch that fits (memory grows with batch) and keeps the target
    (bisection on the batch, the micro-batches following it); the answer is the largest over the
    splits, on its own layout.
    """
    target = _positive_target(tokens_per_s_per_user, "tokens-per-s-per-user")
    if target is None:
        raise RooflineError("give --tokens-per-s-per-user")
    if options.get("microbatches") is not None:
        raise RooflineError("solve batch sets the micro-batches from the batch it searches; drop --microbatches")
    s = question(model, hardware, options, None, context)
    model, hardware, ceiling, link, context = s.model, s.hardware, s.ceiling, s.link, s.length
    chips = s.layout.chips
    cache = {}

    def at(family, batch):
        layout = for_batch(family, batch)
        return layout, evaluate("decode", model, hardware, batch, context, layout, ceiling, link, cache)

    best = None
    layouts = families(s)
    for family in layouts:
        low = family.min_batch
        by_memory = most_sequences(model, hardware, family, context, max_batch)
        if by_memory is None:
            continue
        try:
            batch = _last_meeting(low, by_memory, lambda b: 1 / at(family, b)[1].cycle_time, target)
        except RooflineError:       # no link joins the layout's chips
            continue
        if batch is not None and (best is None or batch > best[0]):
            best = (batch, family, by_memory)
    if best is None:
        layout, ev = at(s.layout, 1) if layout_given(s) else \
            best_layout("decode", model, hardware, 1, context, chips, ceiling, link)
        if not fits(ev, hardware):
            reason, bound = f"the model does not fit {layout.describe()} even at batch 1", "capacity"
        else:
            reason, bound = (f"even batch 1 reaches only {number(1 / ev.cycle_time)} tokens/s per user on "
                             f"{layout.describe()} (bound by {BINDING_TEXT[binding(ev.split)]})"), binding(ev.split)
        return SolveResult("batch", None, False, bound,
                           margins={"tokens_per_s_per_user": 1 / ev.cycle_time / target}, layout=layout.describe(),
                           why=[reason], assumptions=assumptions(s))
    batch, family, by_memory = best
    layout, ev = at(family, batch)
    speed_allows = batch if batch < by_memory else \
        _last_meeting(batch, max_batch, lambda b: 1 / at(family, b)[1].cycle_time, target)
    binding_name = "capacity" if by_memory <= speed_allows else "tokens_per_s_per_user"
    margins = {"capacity": hardware.mem_capacity / ev.per_chip_memory["total"],
               "tokens_per_s_per_user": 1 / ev.cycle_time / target}
    speed_text = f"the target allows batch {speed_allows}" if speed_allows < max_batch else \
        f"the target allows batch {max_batch} or more"
    why = [f"batch {batch}: {number(1 / ev.cycle_time)} tokens/s per user, {number(batch / ev.cycle_time)} in aggregate",
           f"on {layout.describe()}, memory allows batch {by_memory}; {speed_text}"]
    if len(layouts) > 1:
        why.append(f"the largest batch over {len(layouts)} splits of {chips} chips")
    return SolveResult("batch", batch, True, binding_name, margins=margins, layout=layout.describe(), why=why,
                       assumptions=assumptions(s), result=_result_dict(model, hardware, layout, ev, batch, context))


def solve_context(model, hardware=None, batch=1, tokens_per_s_per_user=None, max_context=1 << 34, **options):
    """The longest context that fits memory (and keeps a per-user speed, if given) (SolveResult).

    `model` is a Scenario (its context is ignored), or a model id with `hardware` and the options
    of scenario.build. Without a layout given, every split of the chips is searched: MLA models
    copy the latent cache on every chip of a TP group, so a narrower TP with wider EP holds more.
    """
    target = _positive_target(tokens_per_s_per_user, "tokens-per-s-per-user")
    s = question(model, hardware, options, batch, 1024)
    model, hardware, ceiling, link, batch = s.model, s.hardware, s.ceiling, s.link, s.batch
    chips = s.layout.chips
    if layout_given(s):
        layouts = [s.layout]
    else:
        layouts = [for_batch(family, batch) for family in families(s) if family.min_batch <= batch]
    cache = {}

    def at(layout, context):
        return evaluate("decode", model, hardware, batch, context, layout, ceiling, link, cache)

    best = None
    for layout in layouts:
        by_memory = _bisect_int(1, max_context, lambda c: fits(decode_memory(model, layout, batch, c), hardware))
        if by_memory is None:
            continue
        try:
            context = _last_meeting(1, by_memory, lambda c: 1 / at(layout, c).cycle_time, target) if target \
                else by_memory
        except RooflineError:       # no link joins the layout's chips
            continue
        if context is not None and (best is None or context > best[0]):
            best = (context, layout, by_memory)
    if best is None:
        layout = layouts[0]
        ev = at(layout, 1)
        bound = "capacity" if not fits(ev, hardware) else "tokens_per_s_per_user"
        margins = {"tokens_per_s_per_user": 1 / ev.cycle_time / target} if target else {}
        return SolveResult("context", None, False, bound, margins=margins, layout=layout.describe(),
                           why=[f"not met even with a context of 1 token on any of {len(layouts)} layouts"],
                           assumptions=assumptions(s))
    context, layout, by_memory = best
    ev = at(layout, context)
    binding_name = "capacity" if context == by_memory else "tokens_per_s_per_user"
    why = [f"context {context} tokens: KV cache {number(ev.per_chip_memory['kv_cache'] / 1e9)} GB per chip on "
           f"{layout.describe()}"]
    if len(layouts) > 1:
        why.append(f"the longest context over {len(layouts)} splits of {chips} chips")
    if context > model.max_context:
        why.append(f"beyond {model.id}'s trained maximum of {model.max_context} tokens")
    margins = {"capacity": hardware.mem_capacity / ev.per_chip_memory["total"]}
    if target:
        margins["tokens_per_s_per_user"] = 1 / ev.cycle_time / target
    return SolveResult("context", context, True, binding_name, margins=margins, layout=layout.describe(), why=why,
                       assumptions=assumptions(s), result=_result_dict(model, hardware, layout, ev, batch, context))


def solve_bandwidth(model, hardware=None, tokens_per_s_per_user=None, batch=1, context=1024, resource="memory",
                    **options):
    """The memory (or link) bandwidth per chip a per-user decode speed needs (SolveResult), on the
    question's layout (the one given, or the fastest split of its chips at the chip's bandwidth)."""
    target = _positive_target(tokens_per_s_per_user, "tokens-per-s-per-user")
    if target is None:
        raise RooflineError("give --tokens-per-s-per-user")
    if resource not in ("memory", "link"):
        raise RooflineError(f"resource must be memory or link, got {resource!r}")
    s = question(model, hardware, options, batch, context)
    model, hardware, ceiling, link, layout = s.model, s.hardware, s.ceiling, s.link, s.layout
    batch, context = s.batch, s.length
    if resource == "link" and layout.chips == 1:
        raise RooflineError("a link bandwidth needs more than one chip: give --chips, --tp or --pp")
    scaled = _bandwidth_scaler(hardware, ceiling, resource, layout, link)

    def speed(factor):
        hw, ceil, _ = scaled(factor)
        return 1 / evaluate("decode", model, hw, batch, context, layout, ceil, link).cycle_time

    if speed(1e6) < target:
        ev = evaluate("decode", model, hardware, batch, context, layout, ceiling, link)
        return SolveResult("bandwidth", None, False, binding(ev.split), layout=layout.describe(), why=[
            f"even unlimited {resource} bandwidth does not reach {target:g} tokens/s per user: other terms "
            f"(compute, fixed costs, {'memory' if resource == 'link' else 'link'} time) take "
            f"{number(1e6 / speed(1e6))} us per token"], assumptions=assumptions(s))
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
                       why=[f"{number(needed / 1e9)} GB/s of {resource} bandwidth per chip ({high:.3g}x the "
                            f"{number(base / 1e9)} GB/s of {hardware.id}'s {resource})"],
                       assumptions=assumptions(s))


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
        f"{chips} x {number(hardware.mem_capacity / 1e9)} GB, {reserve:.0%} kept for KV cache and activations, at "
        f"{per_value * 8:g} bits per weight: {number(params / 1e9)}B parameters"],
        assumptions=[f"{weights_dtype} weights", f"{reserve:.0%} of memory reserved"])
