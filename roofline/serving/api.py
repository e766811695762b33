"""Serving from Python: one answer, the frontier over concurrency and layouts, the fewest chips for limits.

    >>> from roofline import serving
    >>> r = serving.serve("llama-3.1-70b", "h100-sxm", isl=1024, osl=1024, concurrency=64, tp=8)
    >>> r.ttft_s, r.tpot_s, r.to_dict()["output_tokens_per_s_per_chip"]

Inputs are checked here (the edge); the model is in serving.model.
"""
import math
from dataclasses import dataclass, field, replace
from functools import partial

from .. import cost
from ..scenario import choose_mode, positive_int, resolve_hardware, resolve_model
from ..errors import RooflineError
from ..collectives import check_library
from ..parallel import Layout, candidate_layouts, check_layout, moe_ep_from
from ..step import ceilings
from .benchmarks import replicate_kv_heads
from .engines import DEFAULT_ENGINE, load_engine
from .disaggregated import disaggregated
from .model import Pool, StepTable, aggregated, frontier_grid, held_tokens, kv_capacity, running_limit, workload
from .simulate import simulate as simulate_steps

#: concurrencies a frontier sweeps by default: 1 to 512, four per doubling
DEFAULT_CONCURRENCIES = tuple(sorted({max(1, round(2 ** (i / 4))) for i in range(37)}))


def _layout(model, tp, pp, ep, chips=None, moe_tp=None, redundant_experts=0):
    ep = moe_ep_from(model, tp, ep, moe_tp)
    tp = positive_int(1 if tp is None else tp, "tp")
    pp = positive_int(1 if pp is None else pp, "pp")
    if ep is None:
        ep = tp if model.moe is not None and tp > 1 and model.moe.num_experts % tp == 0 else 1
    layout = check_layout(replicate_kv_heads(model, tp), Layout(tp, pp, positive_int(ep, "ep"), 1, redundant_experts))
    if chips not in (None, 1) and layout.chips != chips:
        raise RooflineError(f"the layout {layout.describe()} uses {layout.chips} chips, not --chips {chips}")
    return layout


@dataclass
class Setup:
    """What every serving question shares: the model, chip, ceilings, engine, link and pricing."""
    model: object
    hardware: object
    ceiling: object
    engine: object
    pricing: object
    link: str = None
    notes: list = field(default_factory=list)


def setup(model, hardware, engine=DEFAULT_ENGINE, mode=None, max_batched_tokens=None, max_sequences=None,
          memory_fraction=None, weights_dtype=None, kv_dtype=None, price=None, power=None, overrides=None,
          calibration=None, experts_dtype=None, activations_dtype=None, memory_tier=None, link=None, pue=1,
          collectives="custom", overlap=False):
    """A Setup from ids or spec objects, checked as roofline.scenario checks a question (`collectives`,
    `overlap`: the engine's collective library and MoE overlap, as roofline.scenario.build takes them)."""
    model = resolve_model(model, overrides, weights_dtype, kv_dtype, activations_dtype, experts_dtype)
    hw = resolve_hardware(hardware, memory_tier, calibration)
    if link is not None:
        hw.link(link_id=link)
    used, note = choose_mode(hw, mode)
    eng = load_engine(engine, hw.id, max_batched_tokens, max_sequences, memory_fraction)
    if used == "ideal":     # ideal mode stays a lower bound on time: no fixed costs, the engine's neither
        eng = replace(eng, step_overhead=0.0, sequence_overhead=0.0, request_overhead=0.0, eager_layer_overhead=0.0,
                      source="none in ideal mode (a lower bound on time)")
    check_library(collectives)
    notes = [note] if note else []
    if overlap and used == "ideal":
        notes.append("--overlap applies in calibrated mode: ideal mode adds communication to computation")
    notes.append(f"engine {eng.name}: fixed costs {eng.source}")
    ceiling = replace(ceilings(hw, used), collectives=collectives, overlap=bool(overlap))
    return Setup(model, hw, ceiling, eng, cost.pricing(hw, price, power, pue), link, notes)


def _finish(result, s):
    """Add cost and energy at the served load, and the notes, to a Serving."""
    fields, notes = s.pricing.fields(max(result.output_tokens_per_s, 1e-30), result.chips)
    result.extra.update(usd_per_mtok=fields["usd_per_mtok"], joules_per_token=fields["joules_per_token"],
                        power_w=fields["power_w"], notes=s.notes + notes)
    return result


def serve(model, hardware, isl, osl, concurrency=None, request_rate=None, engine=DEFAULT_ENGINE, chips=None,
          tp=None, pp=None, ep=None, replicas=1, prefill=None, decode=None, prefix_hit=0.0, mode=None,
          max_batched_tokens=None, max_sequences=None, memory_fraction=None, weights_dtype=None, kv_dtype=None,
          price=None, power=None, overrides=None, simulate=False, requests=None, seed=0, moe_tp=None,
          redundant_experts=0, **options):
    """TTFT, TPOT, throughput, KV use, cost and energy of a deployment under a load (serving.model.Serving).

    Aggregated: `replicas` copies of the layout (tp, pp, ep; or the best layout of `chips` chips).
    Disaggregated: `prefill` and `decode` each a dict {tp, pp, ep, workers}. `options`: calibration,
    experts_dtype, activations_dtype, memory_tier, link, pue (as roofline.scenario.build takes them).
    `simulate`: run the aggregated deployment step by step (serving.simulate: `requests` per client,
    or in all for a request rate; `seed` for the drawn lengths and arrivals) instead of the
    mean-value model.
    """
    s = setup(model, hardware, engine, mode, max_batched_tokens, max_sequences, memory_fraction, weights_dtype,
              kv_dtype, price, power, overrides, **options)
    load = workload(s.model, isl, osl, concurrency, request_rate, prefix_hit)
    if (prefill is None) != (decode is None):
        raise RooflineError("disaggregated serving needs both a prefill and a decode pool")
    if simulate:
        solver = partial(simulate_steps, requests=None if requests is None else positive_int(requests, "requests"),
                         seed=seed)
        if prefill is not None:
            raise RooflineError("the simulation covers aggregated serving; drop the simulation or the prefill and "
                                "decode pools")
    else:
        solver = aggregated
    if prefill is not None:
        pools = [Pool(_layout(s.model, p.get("tp"), p.get("pp"), p.get("ep")), positive_int(p.get("workers", 1),
                                                                                               "workers"))
                 for p in (prefill, decode)]
        wide = max(pool.layout.tp for pool in pools)
        return _finish(disaggregated(replicate_kv_heads(s.model, wide), s.hardware, *pools, s.ceiling, s.engine, load,
                                     s.link), s)
    replicas = positive_int(replicas, "replicas")
    chips = None if chips is None else positive_int(chips, "chips")
    if tp is None and pp is None and ep is None and chips not in (None, 1):
        best = None
        for layout in candidate_layouts(s.model, s.hardware, positive_int(chips, "chips"), 1):
            try:
                result = solver(replicate_kv_heads(s.model, layout.tp), s.hardware, Pool(layout, replicas),
                                s.ceiling, s.engine, load, s.link)
            except RooflineError:
                continue
            if best is None or result.tpot_s < best.tpot_s:
                best = result
        if best is None:
            raise RooflineError(f"no layout of {chips} chips holds {s.model.id} with room for its KV cache")
        return _finish(best, s)
    layout = _layout(s.model, tp, pp, ep, chips, moe_tp, redundant_experts)
    return _finish(solver(replicate_kv_heads(s.model, layout.tp), s.hardware, Pool(layout, replicas), s.ceiling,
                          s.engine, load, s.link), s)


def _layouts(s, chips, tp, pp, ep, search, moe_tp=None, redundant_experts=0):
    chips = positive_int(1 if chips is None else chips, "chips")
    if search and (moe_tp is not None or redundant_experts):
        raise RooflineError("--search chooses the layouts; --moe-tp and --redundant-experts shape a layout you give")
    if search:
        out = []
        for n in range(1, positive_int(chips, "chips") + 1):
            if chips % n == 0:
                try:
                    out += candidate_layouts(s.model, s.hardware, n, 1)
                except RooflineError:
                    continue
        return out
    return [_layout(s.model, tp, pp, ep, None if tp or pp or ep else chips, moe_tp, redundant_experts)] \
        if (tp or pp or ep or chips in (None, 1)) else [_layout(s.model, chips, None, None)]


def frontier(model, hardware, isl, osl, concurrencies=DEFAULT_CONCURRENCIES, engine=DEFAULT_ENGINE, chips=1,
             tp=None, pp=None, ep=None, search=False, prefix_hit=0.0, mode=None, max_batched_tokens=None,
             max_sequences=None, memory_fraction=None, weights_dtype=None, kv_dtype=None, overrides=None, moe_tp=None,
             redundant_experts=0, **options):
    """(points, pareto): every (layout, concurrency) answer as a Serving, and the Pareto frontier of output
    tokens/s per chip against tokens/s per user (no point beats a frontier point on both).

    `search`: every layout of every chip count dividing `chips` (aggregated); else the one layout given.
    """
    s = setup(model, hardware, engine, mode, max_batched_tokens, max_sequences, memory_fraction, weights_dtype,
              kv_dtype, None, None, overrides, **options)
    concurrencies = sorted({positive_int(c, "concurrency") for c in concurrencies})
    points, skipped = [], []
    for layout in _layouts(s, chips, tp, pp, ep, search, moe_tp, redundant_experts):
        m = replicate_kv_heads(s.model, layout.tp)
        first = workload(m, isl, osl, concurrency=concurrencies[-1], prefix_hit=prefix_hit)
        try:
            capacity = kv_capacity(m, s.hardware, layout, s.engine, held_tokens(first, s.engine))[0]
        except RooflineError as exc:
            skipped.append((layout.describe(), str(exc)))
            continue
        top = min(running_limit(s.engine, layout, capacity), concurrencies[-1])
        table = StepTable(m, s.hardware, layout, s.ceiling, s.engine, first.mean_isl + first.mean_osl / 2,
                          first.mean_isl * (1 - prefix_hit), first.mean_isl * prefix_hit, frontier_grid(top), s.link)
        for c in concurrencies:
            load = workload(m, isl, osl, concurrency=c, prefix_hit=prefix_hit)
            points.append(aggregated(m, s.hardware, Pool(layout), s.ceiling, s.engine, load, s.link, table=table))
    if not points:
        raise RooflineError("no layout holds the model: " + "; ".join(f"{name}: {why}" for name, why in skipped))
    return points, pareto(points)


def pareto(points):
    """The points not dominated in (tokens/s per user, output tokens/s per chip), fastest per user first."""
    def per_chip(p):
        return p.output_tokens_per_s / p.chips
    ordered = sorted(points, key=lambda p: (-p.interactivity, -per_chip(p)))
    front, best = [], -math.inf
    for p in ordered:
        if per_chip(p) > best:
            front.append(p)
            best = per_chip(p)
    return front


@dataclass
class ServingPlan:
    """solve serving's answer: the fewest chips meeting both limits, or why none does."""
    feasible: bool
    chips: int = None
    plan: str = None            # the deployment, in words
    binding: str = None         # ttft | tpot
    margins: dict = field(default_factory=dict)   # (limit - value) / limit
    result: object = None       # the Serving of the plan
    why: str = ""

    def to_dict(self):
        out = {"feasible": self.feasible, "chips": self.chips, "plan": self.plan, "binding": self.binding,
               "margins": self.margins, "why": self.why}
        if self.result is not None:
            out["serving"] = self.result.to_dict()
        return out


def _meets(r, ttft_max, tpot_max):
    return not r.saturated and r.ttft_s <= ttft_max and r.tpot_s <= tpot_max


def solve_serving(model, hardware, isl, osl, request_rate, ttft_max, tpot_max, max_chips=64, engine=DEFAULT_ENGINE,
                  disaggregated_too=True, prefix_hit=0.0, mode=None, max_batched_tokens=None, weights_dtype=None,
                  kv_dtype=None, overrides=None, **options):
    """The fewest chips (replicas of a layout, or prefill and decode pools) serving `request_rate`
    requests/s with mean TTFT <= ttft_max and TPOT <= tpot_max [s]; the binding limit and margins."""
    for name, value in (("TTFT limit", ttft_max), ("TPOT limit", tpot_max)):
        if not (isinstance(value, (int, float)) and value > 0):
            raise RooflineError(f"{name} must be a positive number of seconds, got {value!r}")
    max_chips = positive_int(max_chips, "max chips")
    s = setup(model, hardware, engine, mode, max_batched_tokens, None, None, weights_dtype, kv_dtype, None, None,
              overrides, **options)
    workload(s.model, isl, osl, request_rate=request_rate, prefix_hit=prefix_hit)
    sizes = [n for n in range(1, min(max_chips, 64) + 1) if n & (n - 1) == 0 or n % 8 == 0]
    layouts = []
    for n in sizes:
        try:
            layouts += candidate_layouts(s.model, s.hardware, n, 1)
        except RooflineError:
            continue
    best = None

    def consider(result, chips, plan):
        nonlocal best
        if chips <= max_chips and _meets(result, ttft_max, tpot_max) and (best is None or chips < best[0]):
            best = (chips, plan, result)

    closest = None
    for layout in layouts:
        m = replicate_kv_heads(s.model, layout.tp)
        for replicas in range(1, max_chips // layout.chips + 1):
            if best is not None and replicas * layout.chips >= best[0]:
                break
            load = workload(m, isl, osl, request_rate=request_rate, prefix_hit=prefix_hit)
            try:
                r = aggregated(m, s.hardware, Pool(layout, replicas), s.ceiling, s.engine, load, s.link)
            except RooflineError:
                break
            closest = r if closest is None or _worse(closest, r, ttft_max, tpot_max) else closest
            consider(r, replicas * layout.chips, f"aggregated: {r.layout}")
            if _meets(r, ttft_max, tpot_max) or r.tpot_s > tpot_max and not r.saturated:
                break
    if disaggregated_too:
        for pl in layouts:
            for dl in layouts:
                if best is not None and pl.chips + dl.chips >= best[0]:
                    continue
                m = replicate_kv_heads(s.model, max(pl.tp, dl.tp))
                load = workload(m, isl, osl, request_rate=request_rate, prefix_hit=prefix_hit)
                for y in range(1, max_chips // dl.chips + 1):
                    for x in range(1, (max_chips - y * dl.chips) // pl.chips + 1):
                        chips = x * pl.chips + y * dl.chips
                        if best is not None and chips >= best[0]:
                            break
                        try:
                            r = disaggregated(m, s.hardware, Pool(pl, x), Pool(dl, y), s.ceiling, s.engine, load,
                                              s.link)
                        except RooflineError:
                            break
                        consider(r, chips, f"disaggregated: {r.layout}")
                        if _meets(r, ttft_max, tpot_max) or r.saturated is False and r.tpot_s > tpot_max:
                            break
                    if best is not None and y * dl.chips + pl.chips >= best[0]:
                        break
    if best is None:
        why = (f"no deployment of at most {max_chips} {s.hardware.id} chips serves {request_rate:g} requests/s "
               f"with TTFT <= {ttft_max:g} s and TPOT <= {tpot_max:g} s")
        if closest is not None:
            why += (f"; the closest, {closest.layout}, gives TTFT {closest.ttft_s:.3g} s and TPOT "
                    f"{closest.tpot_s:.3g} s{' (saturated)' if closest.saturated else ''}")
        return ServingPlan(False, why=why)
    chips, plan, r = best
    margins = {"ttft": (ttft_max - r.ttft_s) / ttft_max, "tpot": (tpot_max - r.tpot_s) / tpot_max}
    _finish(r, s)
    return ServingPlan(True, chips, plan, min(margins, key=margins.get), margins, r)


def _worse(a, b, ttft_max, tpot_max):
    """Whether Serving `a` misses the limits by more than `b` (the larger of the two overshoots)."""
    def miss(r):
        return math.inf if r.saturated else max(r.ttft_s / ttft_max, r.tpot_s / tpot_max)
    return miss(a) > miss(b)
