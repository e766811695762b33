"""What every answer of the solver holds, and the steps the solvers share."""
from dataclasses import dataclass, field

from ..scenario import choose_mode, resolve_hardware, resolve_model
from ..binding import BINDING_TEXT, binding
from ..errors import RooflineError
from ..parallel import Layout, candidate_layouts, check_layout, default_ep, for_batch
from ..placement import best_layout
from ..results import Record
from ..step import ceilings
from ..units import format_si


#: the margins that are targets: below 1 the answer misses it
TARGETS = ("capacity", "tokens_per_s_per_user", "tokens_per_s", "usd_per_mtok")


@dataclass
class SolveResult(Record):
    """An answer of the solver with its binding constraint, margins and assumptions."""
    question: str
    answer: object
    feasible: bool
    binding: str
    margins: dict = field(default_factory=dict)     # constraint -> achieved / required (>= 1 is met)
    layout: str = ""
    why: list = field(default_factory=list)
    assumptions: list = field(default_factory=list)
    scan: list = field(default_factory=list)         # rows of (chips, layout, per-user tok/s, aggregate, bound)
    result: dict = None                              # the forward answer at the solution

    def __post_init__(self):
        missed = [k for k in TARGETS if self.margins.get(k, 1) < 1]
        if self.feasible and missed:
            raise RuntimeError(f"solver bug: a feasible {self.question} answer misses {', '.join(missed)}")

    def to_dict(self):
        out = {self.question: self.answer}
        out.update({k: v for k, v in super().to_dict().items() if k not in ("question", "answer")})
        return out


def _setup(model, hardware, mode, weights_dtype, kv_dtype, overrides, memory_tier, link=None):
    model = resolve_model(model, overrides, weights_dtype, kv_dtype)
    hardware = resolve_hardware(hardware, memory_tier)
    if link is not None:
        hardware.link(link_id=link)
    mode, note = choose_mode(hardware, mode)
    assumptions = [note] if note else []
    assumptions.append(f"{mode} mode on {hardware.id} ({hardware.main_memory.name}: "
                       f"{format_si(hardware.mem_capacity, 'B')} at {format_si(hardware.mem_bandwidth, 'B/s')} per chip)")
    if hardware.calibration is not None and mode == "calibrated":
        assumptions.append(f"calibration from {hardware.calibration.source}")
    assumptions.append("dtypes: " + ", ".join(f"{k}={v}" for k, v in model.dtypes.items()))
    return model, hardware, ceilings(hardware, mode), assumptions


def _positive_target(value, name):
    if value is None:
        return None
    if not value > 0 or value != value:
        raise RooflineError(f"{name} must be greater than zero, got {value!r}")
    return float(value)


def _result_dict(model, hardware, layout, ev, batch, context, replicas=1):
    return {"model": model.id, "hardware": hardware.id, "chips_per_replica": layout.chips, "replicas": replicas,
            "tp": layout.tp, "pp": layout.pp, "ep": layout.ep, "microbatches": layout.microbatches,
            "batch": batch, "context": context, "time_s": ev.cycle_time,
            "tokens_per_s_per_user": 1 / ev.cycle_time, "tokens_per_s": replicas * batch / ev.cycle_time,
            "memory_per_chip_bytes": ev.per_chip_memory["total"], "time_split_s": ev.split}


def _bisect_int(low, high, ok):
    """Largest integer in [low, high] with ok(n) True, assuming ok is monotone (True then False)."""
    if not ok(low):
        return None
    while low < high:
        mid = (low + high + 1) // 2
        if ok(mid):
            low = mid
        else:
            high = mid - 1
    return low


def _layout_for(model, hardware, batch, chips, tp, pp, ceiling, context, link):
    """Layout from explicit tp/pp or the fastest split of `chips` (placement.best_layout)."""
    if tp is None and pp is None:
        return best_layout("decode", model, hardware, batch, context, chips, ceiling, link)[0]
    return for_batch(check_layout(model, Layout(tp or 1, pp or 1, default_ep(model, tp or 1))), batch)


def _families(model, hardware, chips, tp, pp):
    """The layouts a question about `chips` chips may use, for any batch (micro-batches set per
    batch with parallel.for_batch, each valid from its min_batch): the one given by tp/pp, else
    every split of the chips (parallel.candidate_layouts)."""
    if tp is not None or pp is not None:
        return [check_layout(model, Layout(tp or 1, pp or 1, default_ep(model, tp or 1)))]
    if chips == 1:
        return [Layout()]
    return candidate_layouts(model, hardware, chips, None)
