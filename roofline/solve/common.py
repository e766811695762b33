"""What every answer of the solver holds, and the steps the solvers share."""
from dataclasses import dataclass, field

import numpy as np

from ..errors import RooflineError
from ..parallel import attention_groups, candidate_layouts
from ..results import Record
from ..scenario import Scenario, build
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


def question(model, hardware, options, batch=None, context=1024):
    """The base question of a solver as a Scenario: `model` itself when it is one (then nothing else
    may be given), else scenario.build(model, hardware, 'decode', batch, context, **options);
    batch None is the fewest sequences the layout asked for serves (one per attention group)."""
    if isinstance(model, Scenario):
        if hardware is not None or options:
            raise RooflineError("a Scenario carries its own chip and options; give it alone with the target")
        if model.phase != "decode":
            raise RooflineError(f"the solver answers decode questions; this Scenario is a {model.phase}")
        if np.ndim(model.batch) or np.ndim(model.length):
            raise RooflineError("the solver answers one point, not a grid over batch or context")
        return model
    if batch is None:
        tp, ep = options.get("tp") or 1, options.get("ep") or 1
        batch = attention_groups(tp, ep) if isinstance(tp, int) and isinstance(ep, int) else 1
    return build(model, hardware, "decode", batch=batch, context=context, **options)


def assumptions(scenario):
    """What an answer assumes: the mode (and its note), the memory, the calibration, the dtypes."""
    hardware, model = scenario.hardware, scenario.model
    out = list(scenario.notes)
    out.append(f"{scenario.mode} mode on {hardware.id} ({hardware.main_memory.name}: "
               f"{format_si(hardware.mem_capacity, 'B')} at {format_si(hardware.mem_bandwidth, 'B/s')} per chip)")
    if scenario.calibration_source is not None:
        out.append(f"calibration {scenario.calibration_source}: {hardware.calibration.source}")
    out.append("dtypes: " + ", ".join(f"{k}={v}" for k, v in model.dtypes.items()))
    return out


def layout_given(scenario):
    """Whether the question fixes its layout (--tp/--pp/--ep, or a Scenario built with them) rather
    than leaving the split of its chips to the search."""
    return scenario.candidates == 0 and scenario.layout.chips > 1


def families(scenario):
    """The layouts a question may use, for any batch (micro-batches follow the batch through
    parallel.for_batch; each is valid from its min_batch): the one the question fixes, else every
    split of its chips (parallel.candidate_layouts, TP inside the scale-up domain)."""
    if layout_given(scenario):
        return [scenario.layout]
    return candidate_layouts(scenario.model, scenario.hardware, scenario.layout.chips, None)


def _positive_target(value, name):
    if value is None:
        return None
    if not 0 < value < float("inf"):
        raise RooflineError(f"{name} must be a finite number greater than zero, got {value!r}")
    return float(value)


def _result_dict(model, hardware, layout, ev, batch, context, replicas=1):
    return {"model": model.id, "hardware": hardware.id, "chips_per_replica": layout.chips, "replicas": replicas,
            "tp": layout.tp, "pp": layout.pp, "ep": layout.ep, "microbatches": layout.microbatches,
            "batch": batch, "context": context, "time_s": ev.cycle_time,
            "tokens_per_s_per_user": 1 / ev.cycle_time, "tokens_per_s": replicas * batch / ev.cycle_time,
            "memory_per_chip_bytes": ev.per_chip_memory["total"], "time_split_s": ev.split}


def _last_meeting(low, high, speed, target):
    """Largest integer n in [low, high] with speed(n) >= target, for a speed that falls as n grows;
    None if even speed(low) misses.

    A search on the step time 1 / speed, which grows about linearly with the batch or the
    context: each probe interpolates between the two that bracket the target (the Illinois
    variant of regula falsi: an end kept twice in a row has its residual halved, so a curved step
    time cannot stall it), so it ends in a few evaluations where bisection takes log2(high - low).
    """
    at_low = speed(low)
    if at_low < target:
        return None
    at_high = speed(high) if high > low else at_low
    if at_high >= target:
        return high
    budget = 1 / target
    below, above, kept = 1 / at_low - budget, 1 / at_high - budget, 0     # below <= 0 < above
    while high - low > 1:
        probe = min(max(low + int(-below / (above - below) * (high - low)), low + 1), high - 1)
        residual = 1 / speed(probe) - budget
        if residual <= 0:
            low, below = probe, residual
            above, kept = (above / 2, 0) if kept == 1 else (above, 1)
        else:
            high, above = probe, residual
            below, kept = (below / 2, 0) if kept == -1 else (below, -1)
    return low


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
