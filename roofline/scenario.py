"""A question as one value: the model, the chip, the point, the layout, the mode, the prices.

    >>> from roofline import scenario
    >>> s = scenario.build("llama-3.1-70b", "h100-sxm", batch=16, context=4096, chips=8)
    >>> scenario.evaluate(s).cycle_time

`build` resolves and checks everything once (ids or spec objects, overrides, dtypes, the
calibration, the layout, price and power) and returns an immutable `Scenario`; `evaluate` gives
its step through the one step-time path (roofline.deployment.ForwardPass). Every API function,
command and solver builds a Scenario; a change of batch, context or layout is `with_point` or
`with_layout`, which check the new value the same way.
"""
import numbers
from dataclasses import dataclass, field, replace

import numpy as np

from . import cost
from .transfer import with_calibration
from .deployment import PHASES, evaluate as evaluate_layout, fastest, forward_pass
from .errors import RooflineError
from .hardware import Hardware, chip_with_overrides, load_hardware, split_overrides
from .models import Model, load_model, with_dtypes
from .collectives import check_library
from .parallel import candidate_layouts, check_layout, make_layout, moe_ep_from
from .step import MODES, ceilings

#: the largest batch or context a question may ask for: beyond it no model or chip is physical
MAX_COUNT = 10 ** 12


def positive_int(value, name):
    """`value` as an int >= 1, or RooflineError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != value \
            or value in (float("inf"), float("-inf")) or value != int(value) or value < 1:
        raise RooflineError(f"{name} must be a whole number of at least 1, got {value!r}")
    if value > MAX_COUNT:
        raise RooflineError(f"{name} must be at most {MAX_COUNT:.0e}, got {value!r}")
    return int(value)


def whole_numbers(values, name):
    """`values` (a number or a sequence) as int64 whole numbers >= 1: a 1-D array, or an int."""
    array = np.asarray(values)
    if array.ndim == 0:
        return positive_int(values, name)
    if array.ndim != 1 or array.size == 0:
        raise RooflineError(f"{name} must be one or more whole numbers of at least 1, got {values!r}")
    if array.dtype.kind not in "iuf" or not np.all(np.isfinite(array)) or np.any(array < 1) \
            or np.any(array != np.floor(array)):
        bad = next((v for v in array.tolist() if not (isinstance(v, (int, float)) and v >= 1 and v == int(v))),
                   values)
        raise RooflineError(f"{name} must be whole numbers of at least 1, got {bad!r}")
    if np.any(array > MAX_COUNT):
        raise RooflineError(f"{name} must be at most {MAX_COUNT:.0e}, got {int(array.max())}")
    return array.astype(np.int64)


def resolve_model(model, overrides=None, weights_dtype=None, kv_dtype=None, activations_dtype=None,
                  experts_dtype=None):
    """A Model from an id, a path or a Model, with overrides and dtype changes applied."""
    if not isinstance(model, Model):
        model = load_model(model, overrides)
    elif overrides:
        raise RooflineError("overrides apply to a model id or file, not to a Model object")
    return with_dtypes(model, weights=weights_dtype, kv_cache=kv_dtype, activations=activations_dtype,
                       experts=experts_dtype)


def resolve_hardware(hardware, memory_tier=None, calibration=None):
    """A Hardware from an id, a path or a Hardware, with the weight-holding tier and calibration chosen."""
    if not isinstance(hardware, Hardware):
        hardware = load_hardware(hardware)
    if memory_tier:
        hardware = hardware.with_tier(memory_tier)
    return with_calibration(hardware, calibration)


def choose_mode(hardware, mode):
    """(mode, note): calibrated where the chip has a calibration, else ideal with a note saying so."""
    if mode is not None and mode not in MODES:
        raise RooflineError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "ideal":
        return "ideal", None
    if hardware.calibration is None:
        return "ideal", (f"{hardware.id} has no calibration: ideal mode (datasheet peaks, no fixed costs), "
                         "a lower bound on time")
    cal = hardware.calibration
    said = (cal.path is None and cal.origin != "fitted") or cal.origin == "assumed efficiency"
    return "calibrated", (cal.note if said else None)


@dataclass(frozen=True)
class Scenario:
    """Everything one question needs, resolved and checked (built by `build`).

    batch [sequences] and length [tokens] (decode: cached tokens per sequence; prefill: prompt
    length) are whole numbers, or 1-D int64 arrays for a grid. `layout` is the layout asked for,
    or the fastest of `candidates` valid splits of the chips when none was given.
    """
    model: Model
    hardware: Hardware
    phase: str
    batch: object
    length: object
    layout: object
    mode: str
    pricing: cost.Pricing
    link: str = None
    candidates: int = 0          # layouts compared when the layout was chosen (0: given)
    query_tokens: int = 1        # new tokens per sequence per decode step (speculative verification)
    collectives: str = "custom"  # the engine's collective library (roofline.collectives.LIBRARIES)
    overlap: bool = False        # MoE all-to-all under the shared experts (calibrated mode only)
    notes: tuple = field(default=(), compare=False)

    @property
    def ceiling(self):
        """The Ceilings of the chip in this scenario's mode (roofline.step.ceilings), with the engine's
        collective library and overlap: every path that evaluates the scenario's steps (solvers,
        layout searches) prices its collectives the same way."""
        return replace(ceilings(self.hardware, self.mode), collectives=self.collectives, overlap=self.overlap)

    @property
    def chips(self):
        return self.layout.chips

    @property
    def calibration_source(self):
        """Where the calibration comes from ('fitted', 'transferred from ...', 'published'), None in ideal mode."""
        if self.mode != "calibrated":
            return None
        return getattr(self.hardware.calibration, "origin", None) or "fitted"

    def with_point(self, batch=None, length=None):
        """The same question at another batch and/or length, with the layout checked against it."""
        batch = self.batch if batch is None else whole_numbers(batch, "batch")
        length = self.length if length is None else whole_numbers(length, "context" if self.phase != "prefill"
                                                                  else "prompt")
        if np.ndim(batch) == 0:
            check_layout(self.model, self.layout, batch)
        return replace(self, batch=batch, length=length)

    def with_layout(self, layout):
        """The same question on another layout (checked)."""
        return replace(self, layout=check_layout(self.model, layout, None if np.ndim(self.batch) else self.batch),
                       candidates=0)


def evaluate(scenario):
    """The Evaluation of a scenario's step (roofline.deployment.Evaluation): per-token latency,
    cycle time, per-operator timings, communication, memory per chip."""
    return evaluate_layout(scenario.phase, scenario.model, scenario.hardware, scenario.batch, scenario.length,
                           scenario.layout, scenario.ceiling, scenario.link, query_tokens=scenario.query_tokens)


def forward(scenario):
    """The ForwardPass of a scenario: its operators before any ceiling (a fit evaluates it many times)."""
    return forward_pass(scenario.phase, scenario.model, scenario.hardware, scenario.batch, scenario.length,
                        scenario.layout, scenario.link, scenario.query_tokens)


def _layout(model, hardware, phase, batch, length, ceiling, chips, tp, pp, ep, microbatches, link):
    """(layout, candidates compared): the layout asked for, or the fastest valid split of `chips`."""
    smallest = batch if np.ndim(batch) == 0 else int(np.min(batch))
    microbatches = None if microbatches is None else positive_int(microbatches, "microbatches")
    if tp is None and pp is None and ep is None:
        chips = positive_int(chips, "chips")
        if chips == 1:
            if microbatches not in (None, 1):
                raise RooflineError("--microbatches needs a pipeline (--pp greater than 1)")
            return make_layout(model, smallest), 0
        if microbatches is not None:
            raise RooflineError("--microbatches needs an explicit layout (--tp, --pp or --ep)")
        if np.ndim(batch) or np.ndim(length):
            raise RooflineError(f"a grid over batch or context on {chips} chips needs its layout: give --tp, --pp "
                                "(and --ep)")
        layouts = candidate_layouts(model, hardware, chips, batch)
        return fastest(phase, model, hardware, batch, length, layouts, ceiling, link)[0], len(layouts)
    tp = positive_int(1 if tp is None else tp, "tp")
    pp = positive_int(1 if pp is None else pp, "pp")
    ep = None if ep is None else positive_int(ep, "ep")
    layout = make_layout(model, smallest, tp=tp, pp=pp, ep=ep, microbatches=microbatches)
    if np.ndim(batch) and layout.pp > 1 and microbatches is None \
            and make_layout(model, int(np.max(batch)), tp=tp, pp=pp, ep=ep).microbatches != layout.microbatches:
        raise RooflineError("a grid over batch on a pipeline needs --microbatches (the default, min(pp, batch), "
                            "changes with batch)")
    if chips is not None and chips != 1 and positive_int(chips, "chips") != layout.chips:
        product = f"ep x pp = {layout.ep} x {pp}" if layout.attention_groups > 1 else f"tp x pp = {tp} x {pp}"
        raise RooflineError(f"--chips {chips} does not equal {product} = {layout.chips}")
    return layout, 0


def _context_note(model, length, new_tokens):
    """A warning when the longest `length` plus the `new_tokens` of this step exceeds the model's maximum."""
    longest = int(np.max(length))
    if longest + new_tokens > model.max_context:
        return (f"warning: context {longest}{f' + {new_tokens} new' if new_tokens else ''} exceeds {model.id}'s "
                f"maximum of {model.max_context} tokens; answered as if the model allowed it")
    return None


def build(model, hardware, phase="decode", batch=1, context=None, prompt=None, *, chips=1, tp=None, pp=None,
          ep=None, microbatches=None, link=None, mode=None, calibration=None, weights_dtype=None, kv_dtype=None,
          activations_dtype=None, experts_dtype=None, overrides=None, memory_tier=None, price=None, power=None,
          pue=1, query_tokens=1, collectives="custom", overlap=False, moe_tp=None):
    """A checked Scenario from ids (or spec objects) and options.

    phase 'decode' (`context` tokens cached per sequence, default 1024) or 'prefill' (`prompt`
    tokens per prompt, default 1024); batch and context/prompt may be sequences (a grid). chips
    (the layout chosen for per-user speed) or tp, pp, ep, microbatches (and link) give the layout.
    mode 'ideal' or 'calibrated' (default: calibrated where the chip has a calibration);
    calibration: a calibration id, file or Calibration replacing the chip's. overrides: what-if
    fields {name: text}, of the model ("num_layers") or, as "hardware.FIELD", of the chip
    ("hardware.memory_bandwidth": "6 TB/s"; roofline.hardware.with_overrides). price ("2.5 USD/hour"), power ("700 W"), pue (>= 1): cost and energy.
    collectives: the engine's collective library (custom, nccl, rccl: roofline.collectives);
    overlap: the MoE all-to-all runs under the shared experts (calibrated mode; ideal mode sums them
    and says so); moe_tp: chips each routed expert is split over (MoE TP; with tp it sets ep).
    """
    if phase not in PHASES[:2]:
        raise RooflineError(f"phase must be decode or prefill, got {phase!r}")
    if phase == "decode" and prompt is not None:
        raise RooflineError("a decode step takes a context (tokens cached), not a prompt")
    if phase == "prefill" and context is not None:
        raise RooflineError("a prefill takes a prompt length, not a context")
    length_name = "context" if phase == "decode" else "prompt"
    batch = whole_numbers(batch, "batch")
    length = whole_numbers(1024 if (context if phase == "decode" else prompt) is None else
                           (context if phase == "decode" else prompt), length_name)
    query_tokens = positive_int(query_tokens, "query tokens")
    model_overrides, chip_overrides = split_overrides(overrides)
    model = resolve_model(model, model_overrides, weights_dtype, kv_dtype, activations_dtype, experts_dtype)
    hardware, memory_tier = chip_with_overrides(hardware, chip_overrides, memory_tier)
    hardware = resolve_hardware(hardware, memory_tier, calibration)
    if link is not None:
        hardware.link(link_id=link)
    mode, mode_note = choose_mode(hardware, mode)
    check_library(collectives)
    pricing = cost.pricing(hardware, price, power, pue)
    ep = moe_ep_from(model, tp, ep, moe_tp)
    ceiling = replace(ceilings(hardware, mode), collectives=collectives, overlap=bool(overlap))
    layout, candidates = _layout(model, hardware, phase, batch, length, ceiling, chips, tp, pp, ep, microbatches,
                                 link)
    new_tokens = query_tokens if phase == "decode" else 0
    overlap_note = ("--overlap applies in calibrated mode: ideal mode adds communication to computation"
                    if overlap and mode == "ideal" else None)
    notes = tuple(n for n in (mode_note, _context_note(model, length, new_tokens), overlap_note) if n)
    return Scenario(model=model, hardware=hardware, phase=phase, batch=batch, length=length, layout=layout,
                    mode=mode, pricing=pricing, link=link, candidates=candidates, query_tokens=query_tokens,
                    collectives=collectives, overlap=bool(overlap), notes=notes)
