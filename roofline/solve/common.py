"""What every answer of the solver holds, and the steps the solvers share."""
from dataclasses import dataclass, field

from ..scenario import choose_mode, resolve_hardware, resolve_model
from ..deployment import fastest
from ..errors import RooflineError
from ..parallel import candidate_layouts, make_layout
from ..results import Record
from ..step import ceilings
from ..units import format_si

#: what each time category means when it binds
BINDING_TEXT = {
    "memory": "memory bandwidth (streaming weights and KV cache)",
    "compute": "compute (FLOP/s)",
    "overhead": "fixed costs per layer and per token (kernel launches, serial work, sampling and host path)",
    "link latency": "link latency (per hop and per collective)",
    "link bandwidth": "link bandwidth",
    "capacity": "memory capacity (the weights and KV cache must fit)",
}


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


#: the largest target a solver accepts (tokens/s, tokens, seconds, chips): far past any deployment
MAX_TARGET = 1e15


def _positive_target(value, name):
    if value is None:
        return None
    if not value > 0 or value != value:
        raise RooflineError(f"{name} must be greater than zero, got {value!r}")
    if not value < MAX_TARGET:
        raise RooflineError(f"{name} {value!r} is beyond the limit of {MAX_TARGET:g}; expected a finite target")
    return float(value)


def _binding(ev):
    return max(ev.split, key=ev.split.get)


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
    """Layout from explicit tp/pp or the fastest split of `chips`."""
    if tp is None and pp is None:
        layouts = candidate_layouts(model, hardware, chips, batch) if chips > 1 else [make_layout(model, batch)]
        return fastest("decode", model, hardware, batch, context, layouts, ceiling, link)[0]
    return make_layout(model, batch, tp=tp or 1, pp=pp or 1)
