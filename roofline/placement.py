"""Where a model goes on chips: what "fits" means, the layouts that hold a model, and the layout a
question gets when it names only a chip count.

The layout rules (which splits a model allows) are parallel.check_layout and
parallel.candidate_layouts; the times are deployment.evaluate. This module sits on both and below
the solver, so calibration (predict.py) and the API choose layouts without importing the solver.
"""
import math

from .deployment import evaluate, fastest
from .sharding import per_chip_memory
from .display import number
from .errors import RooflineError
from .memory import footprint
from .parallel import candidate_layouts, for_batch, make_layout
from .step import ceilings


def fits(memory, hardware):
    """Whether the fullest chip holds its share: weights + KV cache + activations <= capacity.

    .. math:: Q_w + Q_{kv} + Q_{act} \\le C

    `memory` is a per-chip dict with a 'total' [B] (sharding.per_chip_memory) or an Evaluation;
    C is the capacity of the memory tier that holds the weights [B] (hardware.mem_capacity). No
    further share is reserved: the activations term already holds the transient tensors of a step.
    The one definition of "fits" used by the API, the solver and the layout choosers.
    """
    memory = getattr(memory, "per_chip_memory", memory)
    return memory["total"] <= hardware.mem_capacity


def decode_memory(model, layout, batch, context):
    """Per-chip memory of a decode step of `batch` sequences at `context` cached tokens [B]: the
    KV cache holds the context plus the token being written, as deployment.evaluate counts it."""
    return per_chip_memory(model, layout, batch, context + 1, batch)


def most_sequences(model, hardware, layout, context, limit):
    """The most sequences `layout` holds at `context` cached tokens, at most `limit`; None when even
    one per attention group does not fit. Micro-batches do not change memory.

    .. math:: Q(B) = W + K \\lceil B / g \\rceil + A B \\le C

    Per-chip memory is affine in the sequences of an attention group (KV cache, K per sequence)
    and in the batch (activations, A per sequence) over the fixed weights W, so the largest
    multiple of the g attention groups that fits follows from Q at g and 2g sequences; the last
    g - 1 candidates above it are bisected, and the answer is checked against `fits`.
    """
    def holds(b):
        return fits(decode_memory(model, layout, b, context), hardware)

    groups = layout.attention_groups
    if groups > limit or not holds(groups):
        return None
    first = decode_memory(model, layout, groups, context)["total"]
    step = decode_memory(model, layout, 2 * groups, context)["total"] - first
    whole = limit if step <= 0 else groups * (1 + int((hardware.mem_capacity - first) // step))
    low = max(groups, min(whole, limit))
    if holds(low) and (low == limit or not holds(min(low + groups, limit))):
        high = min(low + groups - 1, limit)
        while low < high:
            mid = (low + high + 1) // 2
            low, high = (mid, high) if holds(mid) else (low, mid - 1)
        return low
    low, high = groups, limit          # rounding put the estimate off: bisect the whole range
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if holds(mid) else (low, mid - 1)
    return low


def capacity_floor(model, hardware, batch, context):
    """The chips capacity alone needs, before any layout rule: ceil(Q / C).

    .. math:: n_{min} = \\lceil (Q_w + Q_{kv} + Q_{act}) / C \\rceil

    Q from memory.footprint for `batch` sequences of `context` (+1) tokens [B], C per chip [B].
    Returns a dict: need [B], capacity [B], ratio [1], chips.
    """
    need = footprint(model, batch, context + 1)["total"]
    ratio = need / hardware.mem_capacity
    return {"need": need, "capacity": hardware.mem_capacity, "ratio": ratio, "chips": max(1, math.ceil(ratio))}


def capacity_text(model, hardware, batch, context, fewest, fewest_layout, given=False):
    """The capacity arithmetic in words: need / capacity = ratio -> chips, and, when the layout rules
    need more chips than that, the best layout of the first count that misses and why (`given`:
    the layout was asked for, not searched)."""
    floor = capacity_floor(model, hardware, batch, context)
    text = (f"capacity: {number(floor['need'] / 1e9)} GB of weights, KV cache and activations / "
            f"{number(floor['capacity'] / 1e9)} GB per chip = {number(floor['ratio'])} -> {floor['chips']} "
            f"chip{'s' if floor['chips'] > 1 else ''}")
    if given:
        return text + f"; the layout asked for, {fewest_layout.describe()}, holds it"
    if fewest <= floor["chips"]:
        return text + f"; {fewest_layout.describe()} holds it"
    counts = f"{floor['chips']}" if fewest - 1 == floor["chips"] else f"{floor['chips']} to {fewest - 1}"
    try:
        layouts = candidate_layouts(model, hardware, floor["chips"], batch, max_tp=None)
    except RooflineError:
        layouts = []
    if layouts:
        best = min(layouts, key=lambda layout: decode_memory(model, layout, batch, context)["total"])
        fullest = decode_memory(model, best, batch, context)["total"]
        detail = (f"best: {best.describe()}, {number(fullest / 1e9)} GB on its fullest chip, as chips hold whole "
                  "layers and experts and copies of shared weights")
    else:
        detail = (f"{floor['chips']} does not split into TP groups dividing the {model.num_heads} heads and at "
                  f"most {model.num_layers} stages")
    return (text + f"; no layout of {counts} fits ({detail}); the fewest that fits is {fewest} "
            f"({fewest_layout.describe()})")


def placements(model, hardware, batch, context, ceiling, max_chips, link=None):
    """(layout, decode evaluation) of every layout of at most `max_chips` chips that fits, tensor
    parallelism not limited to the scale-up domain (beyond it, over the scale-out link)."""
    cache, found = {}, []
    for layout in candidate_layouts(model, hardware, None, batch, max_chips=max_chips, max_tp=None):
        if not fits(decode_memory(model, layout, batch, context), hardware):
            continue
        try:
            found.append((layout, evaluate("decode", model, hardware, batch, context, layout, ceiling, link, cache)))
        except RooflineError:           # no link reaches the layout's chips
            continue
    return found


def best_layout(phase, model, hardware, batch, length, chips, ceiling, link=None):
    """(layout, evaluation) of the split of `chips` with the best per-user speed (deployment.fastest:
    layouts that fit first), tensor parallelism inside the scale-up domain."""
    layouts = candidate_layouts(model, hardware, chips, batch) if chips > 1 else [make_layout(model, batch)]
    return fastest(phase, model, hardware, batch, length, layouts, ceiling, link)


def layout_notes(phase, model, hardware, batch, length, layout, ev, searched, ceiling, link=None):
    """Notes on a layout chosen automatically among `searched` splits of its chips: which it is, and
    whether a wider expert-parallel layout that this batch is too small for would be faster.

    Wide expert parallelism needs one sequence per data-parallel attention group (ep / tp of them),
    so the set of layouts grows with the batch, and a larger batch can run a step faster than a
    smaller one. The note names the layout, the batch it needs and its step time there.
    """
    notes = [f"layout {layout.describe()} chosen: the fastest per user of {searched} valid splits of "
             f"{layout.chips} chips (pass --tp/--pp/--ep to choose)"]
    wider = [option for option in candidate_layouts(model, hardware, layout.chips, None) if option.min_batch > batch]
    best = None
    for option in wider:
        need = option.min_batch
        option = for_batch(option, need)
        try:
            other = evaluate(phase, model, hardware, need, length, option, ceiling, link)
        except RooflineError:
            continue
        if fits(other, hardware) and other.cycle_time < ev.cycle_time and (best is None or need < best[0]):
            best = (need, option, other)
    if best is not None:
        need, option, other = best
        notes.append(f"layout depends on batch: {option.describe()} needs at least {need} sequences (one per "
                     f"data-parallel attention group) and at batch {need} takes {number(other.cycle_time * 1e3)} ms per "
                     f"step, less than the {number(ev.cycle_time * 1e3)} ms here; a larger batch can be faster per token")
    return notes


def fastest_layout(model, hardware, chips, batch=1, context=1024, mode="ideal"):
    """The split of `chips` chips with the best per-user decode speed (a Layout)."""
    return best_layout("decode", model, hardware, batch, context, chips, ceilings(hardware, mode))[0]


def fewest_chips_layout(model, hardware, batch=1, context=1024, mode="ideal", max_chips=1 << 16):
    """The layout of the fewest chips that hold `model`, a Layout: pipeline stages only (TP=1,
    how SRAM systems spread a model: each chip holds whole layers) where such a layout fits, else
    any split; the fastest per user among those of the fewest chips. Layouts are tried in order of
    chip count with the memory check alone; only those of the first count that fits are timed."""
    ceiling = ceilings(hardware, mode)
    layouts = candidate_layouts(model, hardware, None, batch, max_chips=max_chips, max_tp=None)
    pipelines = [layout for layout in layouts if layout.tp == 1 and layout.ep == 1]
    for group in (pipelines, layouts):
        by_chips = {}
        for layout in group:
            by_chips.setdefault(layout.chips, []).append(layout)
        for chips in sorted(by_chips):
            timed = []
            for layout in by_chips[chips]:
                if not fits(decode_memory(model, layout, batch, context), hardware):
                    continue
                try:
                    timed.append((evaluate("decode", model, hardware, batch, context, layout, ceiling).cycle_time,
                                  layout))
                except RooflineError:       # no link joins the layout's chips
                    continue
            if timed:
                return min(timed, key=lambda tl: tl[0])[1]
    raise RooflineError(f"{model.id} does not fit any layout of at most {max_chips} {hardware.id} chips")
