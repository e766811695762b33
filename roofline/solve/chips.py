"""The fewest chips for a target: a search over the layouts a model allows on a chip.

Layouts searched: tensor parallelism over any divisor of the heads (inside the scale-up domain
over the scale-up link, beyond it over the scale-out link), pipeline stages up to the layer count,
experts spread over the TP group or, for MoE models, over ep chips per stage (any multiple of tp
dividing the experts, with ep/tp data-parallel attention groups, at most one per sequence), and
whole replicas (data parallelism) for an aggregate target. Per-user speed does not depend on the
replica count; aggregate throughput is replicas x batch / cycle time.
"""
import math

from .. import cost
from ..scenario import positive_int
from ..deployment import evaluate
from ..errors import RooflineError
from ..memory import footprint
from ..parallel import Layout, check_layout, default_microbatches, wide_ep_options
from ..step import ceilings
from .common import BINDING_TEXT, SolveResult, _binding, _layout_for, _positive_target, _result_dict, _setup


def tp_options(model, hardware, max_chips):
    """Tensor-parallel widths a model allows: divisors of the heads (<= KV heads for GQA)."""
    limit = model.num_heads if model.attention.kind == "mla" else model.num_kv_heads
    return [tp for tp in range(1, min(limit, max_chips) + 1) if model.num_heads % tp == 0]


def _configs(model, hardware, batch, context, ceiling, max_chips, link):
    """(layout, evaluation) of every layout that fits memory within max_chips: tp x pp with experts
    over the TP group, and for MoE models ep x pp with ep/tp data-parallel attention groups."""
    cache, found = {}, []
    for tp in tp_options(model, hardware, max_chips):
        group_ep = tp if model.moe is not None and tp > 1 and model.moe.num_experts % tp == 0 else 1
        for ep in [group_ep] + wide_ep_options(model, tp, batch, max_chips):
            groups = ep // tp if ep > tp else 1
            for pp in range(1, min(model.num_layers, max_chips // (tp * groups)) + 1):
                try:
                    layout = check_layout(model, Layout(tp, pp, ep, default_microbatches(batch, pp, groups)), batch)
                    ev = evaluate("decode", model, hardware, batch, context, layout, ceiling, link, cache)
                except RooflineError:
                    continue
                if ev.per_chip_memory["total"] <= hardware.mem_capacity:
                    found.append((layout, ev))
    return found


def _scan_rows(configs, batch, budgets):
    """The fastest per-user layout using each chip count of `budgets` (or the most chips below it)."""
    rows = []
    for budget in budgets:
        within = [(l, e) for l, e in configs if l.chips <= budget]
        if not within:
            continue
        most = max(l.chips for l, _ in within)
        layout, ev = max(((l, e) for l, e in within if l.chips == most), key=lambda le: -le[1].cycle_time)
        rows.append({"chips_budget": budget, "chips": layout.chips, "layout": layout.describe(),
                     "tokens_per_s_per_user": 1 / ev.cycle_time, "tokens_per_s": batch / ev.cycle_time,
                     "bound": _binding(ev)})
    return rows


def solve_chips(model, hardware, tokens_per_s_per_user=None, tokens_per_s=None, batch=1, context=1024, mode=None,
                weights_dtype=None, kv_dtype=None, overrides=None, memory_tier=None, link=None, max_chips=20000,
                max_usd_per_mtok=None, price=None):
    """The fewest chips reaching a per-user and/or aggregate decode speed (SolveResult).

    `max_usd_per_mtok` also bounds the cost per million tokens (cost.usd_per_mtok, the chips'
    price from the spec or `price`, e.g. "2.5 USD/hour"); it does not depend on the replica count.
    """
    per_user = _positive_target(tokens_per_s_per_user, "tokens-per-s-per-user")
    aggregate = _positive_target(tokens_per_s, "tokens-per-s")
    cost_limit = _positive_target(max_usd_per_mtok, "max-usd-per-mtok")
    if per_user is None and aggregate is None:
        raise RooflineError("give a target: --tokens-per-s-per-user and/or --tokens-per-s")
    batch, context = positive_int(batch, "batch"), positive_int(context, "context")
    max_chips = positive_int(max_chips, "max-chips")
    model, hardware, ceiling, assumptions = _setup(model, hardware, mode, weights_dtype, kv_dtype, overrides,
                                                   memory_tier, link)
    assumptions.append(f"batch {batch} sequences per replica, {context} tokens cached each")
    chip_price = cost.pricing(hardware, price=price).price
    if cost_limit is not None and chip_price is None:
        raise RooflineError(f"--max-usd-per-mtok: {hardware.id} has no price in its spec; give one with --price USD/hour")
    if cost_limit is not None:
        assumptions.append(f"price {chip_price * 3600:.4g} USD per chip-hour")

    def usd(layout, ev):
        return cost.usd_per_mtok(chip_price, layout.chips, batch / ev.cycle_time) if chip_price else None

    configs = _configs(model, hardware, batch, context, ceiling, max_chips, link)
    need = footprint(model, batch, context + 1)["total"]
    capacity_min = math.ceil(need / hardware.mem_capacity)
    if not configs:
        top_tp = max(tp_options(model, hardware, max_chips))
        top_ep = max([top_tp if model.moe is not None else 1]
                     + [ep for tp in tp_options(model, hardware, max_chips)
                        for ep in wide_ep_options(model, tp, batch, max_chips)])
        why = [f"{model.id} needs {need / 1e9:.4g} GB for weights, KV cache and activations: at least {capacity_min} "
               f"chips of {hardware.mem_capacity / 1e9:.4g} GB, and no layout of at most {max_chips} chips "
               f"(TP up to {top_tp}, {f'EP up to {top_ep}, ' if model.moe else ''}PP up to {model.num_layers} "
               "layers) holds it on every chip"]
        if model.moe is not None and top_ep < model.moe.num_experts and top_tp * batch < model.moe.num_experts:
            why.append(f"expert parallelism wider than the TP group needs a sequence per data-parallel attention "
                       f"group (ep <= tp x batch = {top_tp} x {batch}); a larger --batch allows EP up to "
                       f"{model.moe.num_experts}, one expert per chip")
        return SolveResult("chips", None, False, "capacity", why=why, assumptions=assumptions)
    best = None
    priced_out = 0
    for layout, ev in configs:
        speed = 1 / ev.cycle_time
        if per_user is not None and speed < per_user:
            continue
        if cost_limit is not None and usd(layout, ev) > cost_limit:
            priced_out += 1
            continue
        replicas = max(1, math.ceil(aggregate / (batch * speed))) if aggregate is not None else 1
        key = (layout.chips * replicas, -speed, layout.pp)
        if best is None or key < best[0]:
            best = (key, layout, ev, replicas)
    fewest = min(l.chips for l, _ in configs)
    answer_chips = best[1].chips if best else fewest
    budgets = sorted({fewest, answer_chips, 2 * answer_chips, 4 * answer_chips})
    scan = _scan_rows(configs, batch, budgets)
    fastest_layout, fastest = max(configs, key=lambda le: -le[1].cycle_time)
    if best is None and priced_out:
        cheapest_layout, cheapest = min(configs, key=lambda le: usd(*le))
        return SolveResult("chips", None, False, "max_usd_per_mtok",
                           margins={"usd_per_mtok": cost_limit / usd(cheapest_layout, cheapest)},
                           layout=cheapest_layout.describe(), why=[
                               f"{priced_out} layouts reach the speed target but cost more than {cost_limit:g} USD "
                               f"per million tokens; the cheapest layout of all costs "
                               f"{usd(cheapest_layout, cheapest):.4g} at batch {batch} (a larger batch amortises "
                               "the chips over more tokens)"], assumptions=assumptions, scan=scan)
    if best is None:
        top = 1 / fastest.cycle_time
        split = fastest.split
        floor = split["overhead"] + split["link latency"]
        why = [f"no layout reaches {per_user:g} tokens/s per user: the fastest is {top:.4g} tokens/s per user on "
               f"{fastest_layout.chips} chips ({fastest_layout.describe()}), bound by "
               f"{BINDING_TEXT[_binding(fastest)]}"]
        if floor >= 1 / per_user:
            why.append(f"fixed per-layer costs and link latencies alone take {floor * 1e6:.4g} us per token, more "
                       f"than the {1e6 / per_user:.4g} us budget, and they do not shrink with more chips")
        return SolveResult("chips", None, False, _binding(fastest), margins={"tokens_per_s_per_user": top / per_user},
                           layout=fastest_layout.describe(), why=why, assumptions=assumptions, scan=scan)
    (chips, _, _), layout, ev, replicas = best
    speed = 1 / ev.cycle_time
    margins = {"capacity": hardware.mem_capacity / ev.per_chip_memory["total"]}
    if per_user is not None:
        margins["tokens_per_s_per_user"] = speed / per_user
    if aggregate is not None:
        margins["tokens_per_s"] = replicas * batch * speed / aggregate
    if cost_limit is not None:
        margins["usd_per_mtok"] = cost_limit / usd(layout, ev)
    if layout.chips == fewest and replicas == 1:
        binding = "capacity"
    elif priced_out and cost_limit / usd(layout, ev) < 1.05:
        binding = "max_usd_per_mtok"
    elif aggregate is not None and replicas > 1:
        binding = "tokens_per_s"
    else:
        binding = _binding(ev)
    why = [f"{chips} chips: {replicas} replica{'s' if replicas > 1 else ''} of {layout.describe()}, "
           f"{speed:.4g} tokens/s per user, {replicas * batch * speed:.4g} tokens/s in aggregate",
           f"capacity alone needs {fewest} chips (weights, KV cache and activations: {need / 1e9:.4g} GB)"]
    why.append(_more_chips_sentence(scan, layout.chips))
    assumptions.append("per-user speed does not depend on replicas; each replica serves `batch` sequences")
    result = _result_dict(model, hardware, layout, ev, batch, context, replicas)
    if chip_price:
        result["usd_per_mtok"] = usd(layout, ev)
    return SolveResult("chips", chips, True, binding, margins=margins, layout=layout.describe(), why=why,
                       assumptions=assumptions, scan=scan, result=result)


def _more_chips_sentence(scan, chips):
    """Whether chips beyond the answer raise per-user speed, and why, from the scan rows."""
    at = next((r for r in scan if r["chips"] == chips), None)
    beyond = [r for r in scan if r["chips"] > chips]
    if at is None or not beyond:
        return "no larger layout was searched"
    top = max(beyond, key=lambda r: r["tokens_per_s_per_user"])
    speeds = ", ".join(f"{r['tokens_per_s_per_user']:.4g} on {r['chips']}" for r in [at] + beyond)
    if top["tokens_per_s_per_user"] > 1.05 * at["tokens_per_s_per_user"]:
        return (f"more chips than {chips} raise per-user speed (tokens/s per user: {speeds}): each chip streams "
                f"fewer weights; at {top['chips']} chips the bound is {BINDING_TEXT[top['bound']]}")
    last = beyond[-1]
    reason = ("every added pipeline stage adds a hop, and the layers still run one after another"
              if last["bound"] in ("link latency", "overhead") else "the binding term does not shrink with chips")
    return (f"more chips than {chips} do not raise per-user speed (tokens/s per user: {speeds}): the time per "
            f"token is bound by {BINDING_TEXT[last['bound']]}; {reason}")


def best_within(model, hardware, chips, batch=1, context=1024, tokens_per_s_per_user=None, mode=None,
                weights_dtype=None, kv_dtype=None, link=None):
    """The layout the solver picks for a budget of `chips`: the most aggregate decode throughput
    among layouts (with whole replicas) that fit, use at most `chips` chips and keep the per-user
    target. Returns a dict (layout, replicas, tokens/s per user and aggregate), or None.

    Aggregate throughput never falls as the budget grows: a larger budget only adds candidates.
    """
    chips, batch, context = positive_int(chips, "chips"), positive_int(batch, "batch"), positive_int(context, "context")
    target = _positive_target(tokens_per_s_per_user, "tokens-per-s-per-user")
    model, hardware, ceiling, _ = _setup(model, hardware, mode, weights_dtype, kv_dtype, None, None)
    best = None
    for layout, ev in _configs(model, hardware, batch, context, ceiling, chips, link):
        speed = 1 / ev.cycle_time
        if target is not None and speed < target:
            continue
        replicas = chips // layout.chips
        aggregate = replicas * batch * speed
        if best is None or aggregate > best["tokens_per_s"]:
            best = {"layout": layout.describe(), "chips_used": replicas * layout.chips, "replicas": replicas,
                    "tokens_per_s_per_user": speed, "tokens_per_s": aggregate}
    return best


def fastest_layout(model, hardware, chips, batch=1, context=1024, mode="ideal"):
    """The split of `chips` chips with the best per-user decode speed (a Layout)."""
    return _layout_for(model, hardware, batch, chips, None, None, ceilings(hardware, mode), context, None)


def fewest_chips_layout(model, hardware, batch=1, context=1024, mode="ideal"):
    """The layout of the fewest chips that hold `model`, a Layout: pipeline stages only (TP=1,
    how SRAM systems spread a model: each chip holds whole layers) where such a layout fits, else
    any split; the fastest per user among those of the fewest chips."""
    ceiling = ceilings(hardware, mode)
    configs = _configs(model, hardware, batch, context, ceiling, 1 << 16, None)
    if not configs:
        raise RooflineError(f"{model.id} does not fit any layout of {hardware.id} chips")
    configs = [(l, e) for l, e in configs if l.tp == 1 and l.ep == 1] or configs
    fewest = min(l.chips for l, _ in configs)
    return min(((l, e) for l, e in configs if l.chips == fewest), key=lambda le: le[1].cycle_time)[0]
