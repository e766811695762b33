"""The fewest chips for a target: a search over the layouts a model allows on a chip.

Layouts searched: tensor parallelism over any divisor of the heads (inside the scale-up domain
over the scale-up link, beyond it over the scale-out link), pipeline stages up to the layer count,
experts spread over the TP group or, for MoE models, over ep chips per stage (any multiple of tp
dividing the experts, with ep/tp data-parallel attention groups, at most one per sequence), and
whole replicas (data parallelism) for an aggregate target. Per-user speed does not depend on the
replica count; aggregate throughput is replicas x batch / cycle time.
"""
import math
from dataclasses import replace

from .. import cost
from ..binding import BINDING_TEXT, binding
from ..deployment import evaluate
from ..display import number
from ..errors import RooflineError
from ..memory import footprint, kv_bytes_per_token
from ..parallel import MAX_CHIPS, candidate_layouts, check_chips, ep_options, for_batch, tp_options
from ..placement import capacity_floor, capacity_text, decode_memory, fits, most_sequences, placements
from ..scenario import positive_int
from .common import (SolveResult, _bisect_int, _last_meeting, _positive_target, _result_dict, assumptions,
                     layout_given, question)


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
                     "bound": binding(ev.split)})
    return rows


def solve_chips(model, hardware=None, tokens_per_s_per_user=None, tokens_per_s=None, batch=None, context=1024,
                max_chips=20000, max_usd_per_mtok=None, **options):
    """The fewest chips reaching a per-user and/or aggregate decode speed (SolveResult).

    `model` is a Scenario, or a model id with `hardware` and the options of scenario.build (chips
    excepted: the solver finds them). A layout given (--tp/--pp/--ep) fixes the replica's layout;
    else every layout of at most `max_chips` chips is searched. `batch` (sequences per replica)
    defaults to the Scenario's (1 for ids), except with an aggregate target and no batch, where the
    solver chooses it too (choose_batch: the most each layout holds within the per-user target,
    then the layout and replicas of the fewest chips) and says so. `max_usd_per_mtok` also bounds
    the cost per million tokens (cost.usd_per_mtok at the question's price per chip); it does not
    depend on the replica count.
    """
    per_user = _positive_target(tokens_per_s_per_user, "tokens-per-s-per-user")
    aggregate = _positive_target(tokens_per_s, "tokens-per-s")
    cost_limit = _positive_target(max_usd_per_mtok, "max-usd-per-mtok")
    if per_user is None and aggregate is None:
        raise RooflineError("give a target: --tokens-per-s-per-user and/or --tokens-per-s")
    if options.get("chips") not in (None, 1):
        raise RooflineError("solve chips finds the chip count: give --max-chips (or --tp/--pp/--ep for the "
                            "layout of a replica), not --chips")
    max_chips = check_chips(positive_int(max_chips, "max-chips"), "max-chips")
    chosen = batch is None and aggregate is not None
    s = question(model, hardware, options, batch, context)
    if batch is not None:
        s = s.with_point(batch=batch)
    model, hardware, ceiling, link, context = s.model, s.hardware, s.ceiling, s.link, s.length
    batch = s.batch
    fixed = s.layout if layout_given(s) else None
    notes = assumptions(s)
    chip_price = s.pricing.price
    if cost_limit is not None and chip_price is None:
        raise RooflineError(f"--max-usd-per-mtok: {hardware.id} has no price in its spec; give one with "
                            "--price USD/hour")
    if cost_limit is not None:
        notes.append(f"price {number(chip_price * 3600)} USD per chip-hour")
    batch_why = None
    if chosen:
        found = choose_batch(model, hardware, context, ceiling, max_chips, link, per_user, aggregate, fixed)
        if found is not None:
            batch, family, most = found
            batch_why = (f"batch {batch} per replica chosen by the solver (--batch fixes it): with {most} sequences, "
                         f"the most {for_batch(family, most).describe()} holds in memory"
                         f"{f' at {per_user:g} tokens/s per user' if per_user else ''}, it reaches {aggregate:g} "
                         f"tokens/s on the fewest chips of any layout, and {batch} is the fewest sequences per "
                         "replica that still do (the fastest per user)")
    notes.append(f"batch {batch} sequences per replica{' (chosen)' if batch_why else ''}, {context} tokens cached each")

    def usd(layout, ev):
        return cost.usd_per_mtok(chip_price, layout.chips, batch / ev.cycle_time) if chip_price else None

    if fixed is None:
        # with a chosen batch, the answer's layout has at most found[1].chips chips: the scan needs 4x that
        searched = min(max_chips, 4 * found[1].chips) if batch_why else max_chips
        configs = placements(model, hardware, batch, context, ceiling, searched, link)
    else:
        layout = for_batch(fixed, batch) if chosen else fixed
        ev = evaluate("decode", model, hardware, batch, context, layout, ceiling, link)
        configs = [(layout, ev)] if fits(ev.per_chip_memory, hardware) else []
    if not configs:
        return _nothing_fits(model, hardware, batch, context, max_chips, notes, fixed)
    best = None
    priced_out = 0
    for layout, ev in configs:
        speed = 1 / ev.cycle_time
        if per_user is not None and speed < per_user:
            continue
        if cost_limit is not None and usd(layout, ev) > cost_limit:
            priced_out += 1
            continue
        replicas = _replicas(aggregate, batch * speed) if aggregate is not None else 1
        key = (layout.chips * replicas, -speed, layout.pp)
        if best is None or key < best[0]:
            best = (key, layout, ev, replicas)
    fewest_layout = min(configs, key=lambda le: (le[0].chips, le[1].cycle_time))[0]
    fewest = fewest_layout.chips
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
                               f"{number(usd(cheapest_layout, cheapest))} at batch {batch} (a larger batch amortises "
                               "the chips over more tokens)"], assumptions=notes, scan=scan)
    if best is None:
        top = 1 / fastest.cycle_time
        split = fastest.split
        floor = split["overhead"] + split["link latency"]
        why = [f"no layout reaches {per_user:g} tokens/s per user: the fastest is {number(top)} tokens/s per user on "
               f"{fastest_layout.chips} chips ({fastest_layout.describe()}), bound by "
               f"{BINDING_TEXT[binding(fastest.split)]}"]
        if floor >= 1 / per_user:
            why.append(f"fixed per-layer costs and link latencies alone take {number(floor * 1e6)} us per token, more "
                       f"than the {number(1e6 / per_user)} us budget, and they do not shrink with more chips")
        return SolveResult("chips", None, False, binding(fastest.split),
                           margins={"tokens_per_s_per_user": top / per_user},
                           layout=fastest_layout.describe(), why=why, assumptions=notes, scan=scan)
    (chips, _, _), layout, ev, replicas = best
    speed = 1 / ev.cycle_time
    if chips > max_chips:
        many = f"more than {MAX_CHIPS:,}" if replicas > MAX_CHIPS else f"{replicas:,}"
        return SolveResult("chips", None, False, "tokens_per_s",
                           margins={"tokens_per_s": max_chips // layout.chips * batch * speed / aggregate},
                           layout=layout.describe(), why=[
                               f"{aggregate:g} tokens/s needs {many} replicas of {layout.describe()} at "
                               f"{number(batch * speed)} tokens/s each, more than --max-chips {max_chips}"],
                           assumptions=notes, scan=scan)
    margins = {"capacity": hardware.mem_capacity / ev.per_chip_memory["total"]}
    if per_user is not None:
        margins["tokens_per_s_per_user"] = speed / per_user
    if aggregate is not None:
        margins["tokens_per_s"] = replicas * batch * speed / aggregate
    if cost_limit is not None:
        margins["usd_per_mtok"] = cost_limit / usd(layout, ev)
    if fixed is None and layout.chips == fewest and replicas == 1:
        binding_name = "capacity"
    elif priced_out and cost_limit / usd(layout, ev) < 1.05:
        binding_name = "max_usd_per_mtok"
    elif aggregate is not None and replicas > 1:
        binding_name = "tokens_per_s"
    else:
        binding_name = binding(ev.split)
    why = [f"{chips} chip{'s' if chips != 1 else ''}: {replicas} replica{'s' if replicas > 1 else ''} of "
           f"{layout.describe()}, "
           f"{number(speed)} tokens/s per user, {number(replicas * batch * speed)} tokens/s in aggregate"]
    if batch_why:
        why.append(batch_why)
    why.append(capacity_text(model, hardware, batch, context, fewest, fewest_layout, given=fixed is not None))
    why.append(_more_chips_sentence(scan, layout.chips))
    room = kv_room(model, hardware, layout, batch, context)
    why.append(room_text(model, room, batch, context))
    filled = filled_pipeline(s, layout, batch, context, ev)
    if filled is not None:
        why.append(filled_text(filled, layout))
    notes.append("per-user speed does not depend on replicas; each replica serves `batch` sequences")
    result = _result_dict(model, hardware, layout, ev, batch, context, replicas)
    if chip_price:
        result["usd_per_mtok"] = usd(layout, ev)
    result["joules_per_token"] = s.pricing.fields(batch / ev.cycle_time, layout.chips)[0]["joules_per_token"]
    result["kv_room"] = room
    result["pipeline_filled"] = filled
    return SolveResult("chips", chips, True, binding_name, margins=margins, layout=layout.describe(), why=why,
                       assumptions=notes, scan=scan, result=result)


def kv_room(model, hardware, layout, batch, context, max_context=1 << 34, max_batch=1 << 20):
    """The KV-cache room an answer leaves on its chips (a dict):

    .. math:: R = n C - \\sum_{chips} Q, \\quad c_{max} = \\max\\{c : Q_{fullest}(1, c) \\le C\\},
              \\quad B_{max} = \\max\\{B : Q_{fullest}(B, c) \\le C\\}

    free_bytes: capacity of all chips of the replica minus the model's footprint at the answer
    (memory.footprint: weights once, KV cache and activations) [B], the room in sum (copies of
    shared weights and whole-layer stages make the fullest chip bind first); kv_bytes_per_token: the
    model's KV cache per token
    over all layers, windows ignored [B/token]; longest_context_batch1: the most cached tokens one
    sequence can have on this layout (the fullest chip decides; placement.decode_memory);
    largest_batch: the most sequences of `context` tokens the layout holds (placement.most_sequences).
    None where even one does not fit.
    """
    free = layout.chips * hardware.mem_capacity - footprint(model, batch, context + 1)["total"]
    one = replace(layout, microbatches=1)
    longest = _bisect_int(1, max_context, lambda c: fits(decode_memory(model, one, 1, c), hardware))
    largest = most_sequences(model, hardware, layout, context, max_batch)
    return {"free_bytes": free, "kv_bytes_per_token": kv_bytes_per_token(model),
            "longest_context_batch1": longest, "largest_batch": largest}


def room_text(model, room, batch, context):
    """The KV-cache room in words."""
    per_token = room["kv_bytes_per_token"]
    longest = room["longest_context_batch1"]
    largest = room["largest_batch"]
    text = (f"KV-cache room: {number(room['free_bytes'] / 1e9)} GB free over the chips at batch {batch} and context "
            f"{context} ({number(per_token / 1e3)} kB per token, {room['free_bytes'] / per_token:,.0f} more tokens if "
            "spread evenly); the fullest chip binds: ")
    text += (f"at batch 1 the longest context is {longest:,} tokens" if longest else "batch 1 does not fit")
    if longest and longest > model.max_context:
        text += f" (beyond {model.id}'s trained maximum of {model.max_context:,})"
    text += (f", and at context {context:,} the largest batch is {largest:,} sequence{'s' if largest > 1 else ''}"
             if largest
             else f", and no batch fits at context {context:,}")
    return text


def filled_pipeline(s, layout, batch, context, ev):
    """The aggregate with the pipeline filled: one micro-batch per stage (pp x attention groups
    sequences), next to the answer's batch; None without a pipeline or when the answer's batch
    already fills it. A dict: batch, microbatches, tokens/s per user and aggregate, J/token and
    J/token at the answer's batch (None without a power figure), fits (memory holds it).

    .. math:: X = B / t_{cycle}, \\quad E = P n / X

    With m = pp micro-batches every stage works on one while the others work on the rest, so the
    aggregate is up to pp times batch 1's, at the same chips and power (cost.joules_per_token).
    """
    groups = layout.attention_groups
    full = layout.pp * groups
    if layout.pp == 1 or batch >= full:
        return None
    filled = replace(layout, microbatches=layout.pp)
    at = evaluate("decode", s.model, s.hardware, full, context, filled, s.ceiling, s.link)
    aggregate = full / at.cycle_time
    energy = s.pricing.fields(aggregate, layout.chips)[0]["joules_per_token"]
    before = s.pricing.fields(batch / ev.cycle_time, layout.chips)[0]["joules_per_token"]
    return {"batch": full, "microbatches": layout.pp, "tokens_per_s_per_user": 1 / at.cycle_time,
            "tokens_per_s": aggregate, "joules_per_token": energy, "joules_per_token_at_batch": before,
            "batch_tokens_per_s": batch / ev.cycle_time, "fits": fits(at, s.hardware)}


def filled_text(filled, layout):
    """The filled pipeline in words."""
    def joules(value):
        return "J/token unknown (no power in the chip spec)" if value is None else f"{number(value)} J/token"
    text = (f"pipeline filled ({filled['batch']} sequences, one micro-batch per stage of {layout.pp}): "
            f"{number(filled['tokens_per_s'])} tokens/s in aggregate at {number(filled['tokens_per_s_per_user'])} per "
            f"user, {joules(filled['joules_per_token'])}, against {number(filled['batch_tokens_per_s'])} tokens/s "
            f"and {joules(filled['joules_per_token_at_batch'])} at the answer's batch, where all but one stage "
            "wait at any moment")
    if not filled["fits"]:
        text += "; it does not fit in memory at this context"
    return text


def _replicas(aggregate, per_replica):
    """Replicas that reach `aggregate` tokens/s at `per_replica` each: ceil(aggregate / per_replica),
    at least 1, capped at MAX_CHIPS + 1 (no answer needs more; an absurd target stays finite)."""
    return max(1, math.ceil(min(aggregate / per_replica, MAX_CHIPS + 1)))


def choose_batch(model, hardware, context, ceiling, max_chips, link, per_user, aggregate, fixed=None,
                 max_batch=65536):
    """(batch, layout, largest batch) that reach an aggregate decode speed with the fewest chips,
    or None: the batch is the fewest sequences per replica that keep that chip count (the fastest
    per user), the largest batch the most the layout holds within memory and the per-user target.

    For each layout of at most `max_chips` chips: the largest batch that fits memory and keeps the
    per-user target (placement.most_sequences, then a search on the step time; aggregate
    throughput B / t grows with B), then replicas = ceil(aggregate / (B / t)); `fixed`, a Layout,
    is the only one tried. Layouts go by chip count; one is skipped when its speed at its smallest
    batch times its largest batch (an upper bound on its throughput) needs more chips than the
    best found, and the search stops at layouts larger than the best answer.
    """
    cache, best = {}, None
    families = [fixed] if fixed is not None else \
        sorted(candidate_layouts(model, hardware, None, None, max_chips=max_chips, max_tp=None),
               key=lambda layout: layout.chips)

    def speed(family, b):
        layout = for_batch(family, b)
        return 1 / evaluate("decode", model, hardware, b, context, layout, ceiling, link, cache).cycle_time

    for family in families:
        if best is not None and family.chips > best[0][0]:
            break                   # one replica of it alone takes more chips than the best answer
        low = family.min_batch
        most = most_sequences(model, hardware, family, context, max_batch)
        if most is None:
            continue
        try:
            fastest = speed(family, low)
        except RooflineError:       # no link joins the layout's chips
            continue
        if per_user is not None and fastest < per_user:
            continue
        if best is not None and family.chips * _replicas(aggregate, most * fastest) > best[0][0]:
            continue
        b = most if per_user is None else _last_meeting(low, most, lambda n: speed(family, n), per_user)
        at = speed(family, b)
        key = (family.chips * _replicas(aggregate, b * at), -at, family.pp)
        if best is None or key < best[0]:
            best = (key, b, family)
    if best is None:
        return None
    (chips, _, _), most, family = best
    replicas = chips // family.chips
    short = _bisect_int(family.min_batch, most, lambda n: replicas * n * speed(family, n) < aggregate)
    fewest = family.min_batch if short is None else min(short + 1, most)
    if replicas * fewest * speed(family, fewest) < aggregate:
        fewest = most                   # throughput not monotone in batch here: keep the largest
    return fewest, family, most


def _nothing_fits(model, hardware, batch, context, max_chips, notes, fixed):
    """The answer when no layout of at most `max_chips` chips (or the `fixed` one) holds the model,
    with the arithmetic."""
    floor = capacity_floor(model, hardware, batch, context)
    if fixed is not None:
        need = decode_memory(model, fixed, batch, context)["total"]
        return SolveResult("chips", None, False, "capacity", layout=fixed.describe(), assumptions=notes, why=[
            f"{fixed.describe()} needs {number(need / 1e9)} GB on its fullest chip, more than the "
            f"{number(hardware.mem_capacity / 1e9)} GB of {hardware.id} (the whole model: {number(floor['need'] / 1e9)} GB, "
            f"{number(floor['ratio'])} chips' worth)"])
    tps = tp_options(model, max_chips)
    top_tp = max(tps)
    top_ep = max(ep for tp in tps for ep in ep_options(model, tp, batch, max_chips))
    why = [f"{model.id} needs {number(floor['need'] / 1e9)} GB for weights, KV cache and activations: "
           f"{number(floor['need'] / 1e9)} GB / {number(floor['capacity'] / 1e9)} GB = {number(floor['ratio'])} -> at least "
           f"{floor['chips']} chips, and no layout of at most {max_chips} chips (TP up to {top_tp}, "
           f"{f'EP up to {top_ep}, ' if model.moe else ''}PP up to {model.num_layers} layers) holds it on every chip"]
    if model.moe is not None and top_ep < model.moe.num_experts and top_tp * batch < model.moe.num_experts:
        why.append(f"expert parallelism wider than the TP group needs a sequence per data-parallel attention "
                   f"group (ep <= tp x batch = {top_tp} x {batch}); a larger --batch allows EP up to "
                   f"{model.moe.num_experts}, one expert per chip")
    return SolveResult("chips", None, False, "capacity", why=why, assumptions=notes)


def _more_chips_sentence(scan, chips):
    """Whether chips beyond the answer raise per-user speed, and why, from the scan rows."""
    at = next((r for r in scan if r["chips"] == chips), None)
    beyond = [r for r in scan if r["chips"] > chips]
    if at is None or not beyond:
        return "no larger layout was searched"
    top = max(beyond, key=lambda r: r["tokens_per_s_per_user"])
    speeds = ", ".join(f"{number(r['tokens_per_s_per_user'])} on {r['chips']}" for r in [at] + beyond)
    if top["tokens_per_s_per_user"] > 1.05 * at["tokens_per_s_per_user"]:
        return (f"more chips than {chips} raise per-user speed (tokens/s per user: {speeds}): each chip streams "
                f"fewer weights; at {top['chips']} chips the bound is {BINDING_TEXT[top['bound']]}")
    last = beyond[-1]
    reason = ("every added pipeline stage adds a hop, and the layers still run one after another"
              if last["bound"] in ("link latency", "overhead") else "the binding term does not shrink with chips")
    return (f"more chips than {chips} do not raise per-user speed (tokens/s per user: {speeds}): the time per "
            f"token is bound by {BINDING_TEXT[last['bound']]}; {reason}")


def best_within(model, hardware=None, chips=1, batch=1, context=1024, tokens_per_s_per_user=None, **options):
    """The layout the solver picks for a budget of `chips`: the most aggregate decode throughput
    among layouts (with whole replicas) that fit, use at most `chips` chips and keep the per-user
    target. `model` is a Scenario or a model id with `hardware` and scenario.build's options.
    Returns a dict (layout, replicas, tokens/s per user and aggregate), or None.

    Aggregate throughput never falls as the budget grows: a larger budget only adds candidates.
    """
    chips = check_chips(positive_int(chips, "chips"))
    target = _positive_target(tokens_per_s_per_user, "tokens-per-s-per-user")
    s = question(model, hardware, options, batch, context)
    best = None
    for layout, ev in placements(s.model, s.hardware, s.batch, s.length, s.ceiling, chips, s.link):
        speed = 1 / ev.cycle_time
        if target is not None and speed < target:
            continue
        replicas = chips // layout.chips
        aggregate = replicas * s.batch * speed
        if best is None or aggregate > best["tokens_per_s"]:
            best = {"layout": layout.describe(), "chips_used": replicas * layout.chips, "replicas": replicas,
                    "tokens_per_s_per_user": speed, "tokens_per_s": aggregate}
    return best
