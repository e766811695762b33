"""Calibrated mode's parameters, declared once: the table every other place reads.

Each row of `PARAMETERS` gives a parameter's name (its key in a calibration file), dimension,
default (its ideal-mode value: what an absent key means), the range a file may give, the sympy
symbol `roofline explain` writes for it, one line on what it stands for physically, and how
`roofline calibrate` fits it. The table drives

- the calibration file reader and the `Calibration` fields (roofline.calibration),
- the `Ceilings` fields and `ceilings(hardware, mode)` (roofline.step),
- the fitter's parameters (roofline.calibrate: `fit_parameter`),
- explain's symbols and their glossary (roofline.explain),
- docs/calibration-parameters.md (`render_glossary`; the command that regenerates it is
  `REGENERATE`, written at the top of that file).

Adding a parameter is one row here plus its physics: the formula that reads the `Ceilings` field
of its name (step.py, deployment.py), and in roofline.calibrate the rows that determine it.

A parameter whose value differs per key carries `per`: `flops` is a mapping per dtype today; a
parameter given per serving engine is a row with ``per="engine"`` (a file then maps engine
names to values and `Ceilings` holds the value of the engine asked for).

This module imports nothing heavy: every command that reads a spec imports it.
"""
import math
from dataclasses import MISSING, dataclass, field as dataclass_field

from .units import DIMENSIONS, format_si


@dataclass(frozen=True)
class FitRule:
    """How `roofline calibrate` fits a parameter (a roofline.fit.Parameter).

    `log`: fitted as log(value), a step being a relative change (rates, shares, the knee); else as
    value / `scale`, which may reach zero (fixed costs). For a ceiling (a row with `relative_to`),
    `start` and `upper` are shares of the best rate the kernel rows allow and `lower` a share of
    the datasheet figure; otherwise they are values in the parameter's SI unit.
    """
    start: float
    lower: float
    upper: float
    log: bool = True
    scale: float = 1.0


@dataclass(frozen=True)
class Derived:
    """The `Ceilings` field a parameter becomes when the ceiling holds a quantity computed from it
    (step.calibrated_ceilings computes it), with that quantity's unit and meaning."""
    field: str
    unit: str
    doc: str
    default: float


@dataclass(frozen=True)
class CalibrationParameter:
    """One calibration parameter (a row of the table)."""
    name: str                 # key in a calibration file; field of Calibration and (unless derived) of Ceilings
    dimension: str            # units.DIMENSIONS key its value must have
    default: object           # ideal-mode value, what an absent key means; None: `absent` says
    lower: float              # allowed range of a file's value [SI unit, or a share of `relative_to`]
    upper: float
    symbol: str               # sympy symbol in roofline explain (per-key rows: symbol_<key>)
    doc: str                  # one line: what it stands for physically
    fit: FitRule = None       # how roofline calibrate fits it; None: never fitted
    lower_open: bool = False  # the range excludes `lower`
    required: bool = False    # a calibration file must give it
    relative_to: str = None   # the range is (0, upper] times this datasheet figure of the chip (a ceiling)
    per: str = None           # the value is a mapping per "dtype" (and, later, per "engine")
    derived: Derived = None   # the Ceilings field computed from it, when not the value itself
    absent: str = None        # what an absent key means, where that is not a number
    in_formula: bool = False  # a term of explain's general formula: shown in calibrated mode even at its default
    digits: int = 4           # significant digits roofline calibrate writes it with

    @property
    def unit(self):
        """The SI unit of its values ('1' for a number)."""
        return DIMENSIONS[self.dimension] or "1"

    @property
    def ceiling_field(self):
        """The name of the `Ceilings` field it sets."""
        return self.derived.field if self.derived else self.name

    @property
    def ceiling_default(self):
        """The `Ceilings` field's ideal-mode value."""
        return self.derived.default if self.derived else self.default


FIXED_COST_FIT = dict(log=False, scale=1e-5)      # fixed costs are fitted in units of 10 us
MAX_FITTED_OVERHEAD = 2e-3                        # [s] the fit searches fixed costs up to 2 ms

#: the table; the order is the positional order of the fields of Calibration and Ceilings.
#: Ranges are what is physically possible, wide enough for any chip and serving engine and narrow
#: enough to catch a unit slip (55.55 s for 55.55 us): no ceiling above the datasheet (calibrated
#: mode is never faster than ideal), at most 10 ms per layer, kernel, collective or hop (0.3 s of
#: fixed cost per token on 32 layers), 1 s per step, 64 operations to dequantize one weight (it
#: takes 2-5: unpack, scale, zero point). The fit searches narrower boxes inside them.
PARAMETERS = (
    CalibrationParameter(
        "bandwidth", "bandwidth", None, 0.0, 1.0, "BW",
        "memory bandwidth a forward pass's operators achieve; HBM parts reach 85-95% of the datasheet "
        "in a large streaming read, a whole step a little less",
        FitRule(0.95, 0.1, 1.0), lower_open=True, required=True, relative_to="mem_bandwidth",
        absent="the datasheet bandwidth of the memory tier holding weights and KV cache"),
    CalibrationParameter(
        "flops", "flops", None, 0.0, 1.0, "P",
        "matmul rate a forward pass's operators (GEMMs and attention) achieve in a dtype; a dtype a file "
        "does not list runs at its peak times the lowest efficiency (achieved / peak) of those it lists",
        FitRule(0.8, 0.02, 1.0), lower_open=True, required=True, relative_to="peak_flops", per="dtype",
        absent="the datasheet dense peak of each dtype"),
    CalibrationParameter(
        "knee", "number", math.inf, 1.0, math.inf, "n",
        "exponent of the smooth maximum t = (t_compute^n + t_memory^n)^(1/n) of an operator near its ridge "
        "point: tiles, waves and the memory pipeline do not overlap compute perfectly (1 adds the two times)",
        FitRule(4.0, 1.0, 50.0), absent="infinity: the hard maximum of the two times", in_formula=True, digits=3),
    CalibrationParameter(
        "layer_overhead", "time", 0.0, 0.0, 10e-3, "t_layer",
        "fixed time per decoder layer per step: launches and the serialised prologues and tails of the "
        "~10-15 kernels of a layer, independent of batch and context",
        FitRule(2e-5, 0.0, MAX_FITTED_OVERHEAD, **FIXED_COST_FIT), in_formula=True),
    CalibrationParameter(
        "step_overhead", "time", 0.0, 0.0, 1.0, "t_0",
        "fixed time per forward pass: sampling, embedding, host synchronisation",
        FitRule(1e-5, 0.0, MAX_FITTED_OVERHEAD, **FIXED_COST_FIT), in_formula=True),
    CalibrationParameter(
        "collective_overhead", "time", 0.0, 0.0, 10e-3, "t_coll",
        "fixed software time of one collective (an all-reduce or all-to-all launch and synchronisation), "
        "on top of the link's latency and bandwidth terms",
        FitRule(5e-6, 0.0, MAX_FITTED_OVERHEAD, **FIXED_COST_FIT)),
    CalibrationParameter(
        "link_latency", "time", None, 0.0, 10e-3, "t_hop",
        "one-hop latency between chips as fitted, replacing the link spec's value (often an assumption)",
        FitRule(2e-6, 0.0, MAX_FITTED_OVERHEAD, **FIXED_COST_FIT), absent="each link spec's own latency"),
    CalibrationParameter(
        "dequant_ops", "number", 0.0, 0.0, 64.0, "t_dq",
        "vector-unit operations per weight to dequantize weights stored in a format the matmul does not run "
        "natively (int8 / int4 weight-only kernels: unpack, scale, zero point)",
        FitRule(2.0, 0.0, 64.0, log=False),
        derived=Derived("dequant_time", "s", "time to dequantize one weight-only quantized weight on the vector "
                        "units: dequant_ops / the datasheet fp32 peak", 0.0)),
    CalibrationParameter(
        "kernel_overhead", "time", 0.0, 0.0, 10e-3, "t_kernel",
        "fixed time of one GEMM kernel timed on its own (launch, prologue, tail), fitted with the knee on the "
        "linear-layer sweep; whole steps carry it inside layer_overhead, so it applies to kernel rows only",
        FitRule(5e-6, 0.0, 1e-4, **FIXED_COST_FIT)),
    CalibrationParameter(
        "attention_efficiency", "number", 1.0, 0.0, 1.0, "eta_attn",
        "FLOP rate of fused attention (softmax, masking and online rescaling between its two matmuls) as a "
        "share of the matmul rate of its dtype; it matters where attention is compute-bound, in long prefills",
        FitRule(0.7, 0.1, 1.0), lower_open=True),
    CalibrationParameter(
        "mesh_traversal", "time", 0.0, 0.0, 10e-3, "t_mesh",
        "wafers only, in place of layer_overhead: time for a matrix-vector product's broadcast and reduction to "
        "cross a whole wafer's core mesh; a matrix holding share x of the chip's memory spans share x of its cores "
        "and pays sqrt(x) of it, once per sequential GEMV of a layer (roofline.wafer)",
        FitRule(1e-5, 0.0, MAX_FITTED_OVERHEAD, **FIXED_COST_FIT)),
)

BY_NAME = {row.name: row for row in PARAMETERS}


def parameter(name):
    """The row of parameter `name`."""
    return BY_NAME[name]


def with_parameter_fields(field_of):
    """Class decorator: a frozen dataclass whose fields are the class's own fields without a default,
    then one per parameter of the table (named `field_of(row)`, defaulting to the ideal-mode value),
    then the class's own fields with a default. Calibration and Ceilings are declared with it."""
    def decorate(cls):
        own = dict(cls.__dict__.get("__annotations__", {}))
        required = {name: kind for name, kind in own.items() if not hasattr(cls, name)}
        optional = {name: kind for name, kind in own.items() if hasattr(cls, name)}
        annotations = dict(required)
        for row in PARAMETERS:
            name, default = field_of(row)
            annotations[name] = dict if row.per else float
            if default is not MISSING:
                setattr(cls, name, dataclass_field(default=default))
        annotations.update(optional)
        cls.__annotations__ = annotations
        return dataclass(frozen=True)(cls)
    return decorate


def format_value(value, unit):
    """A value for a message or the glossary: '10 ms', '0.6', 'infinity'."""
    if value == math.inf:
        return "infinity"
    if unit == "1":
        return f"{value:.4g}"
    return format_si(value, unit, 4)


def range_text(row, reference=None, reference_name=None):
    """The allowed range in words: 'more than 0 and at most 1', 'at least 0 s and at most 10 ms'.

    A ceiling's range is more than 0 and at most `upper` times a datasheet figure: `reference` [SI],
    called `reference_name`.
    """
    if row.relative_to:
        figure = reference_name or "the chip's datasheet figure"
        top = f"{format_value(row.upper * reference, row.unit)} ({figure})" if reference is not None else (
            figure if row.upper == 1 else f"{row.upper:g} x {figure}")
        return f"more than 0 and at most {top}"
    low = f"{'more than' if row.lower_open else 'at least'} {format_value(row.lower, row.unit)}"
    return low if row.upper == math.inf else f"{low} and at most {format_value(row.upper, row.unit)}"


def default_text(row):
    """The ideal-mode value in words."""
    if row.absent:
        return row.absent
    return format_value(row.default, row.unit)


def fit_text(row):
    """How the fitter treats a parameter, in words."""
    rule = row.fit
    if rule is None:
        return "not fitted"
    how = "log(value)" if rule.log else "value" if rule.scale == 1 else f"value / {format_value(rule.scale, row.unit)}"
    if row.relative_to:
        box = (f"from {rule.start:g} x the best kernel rate (at most the datasheet), within {rule.lower:g} x the "
               "datasheet and that rate")
    else:
        box = (f"from {format_value(rule.start, row.unit)}, within {format_value(rule.lower, row.unit)} and "
               f"{format_value(rule.upper, row.unit)}")
    return f"{how}, {box}"


def symbol_name(row):
    """The symbol as explain writes it ('P_<dtype>' for a per-dtype parameter)."""
    return f"{row.symbol}_<{row.per}>" if row.per else row.symbol


def glossary():
    """{symbol: (meaning, unit)} of the parameters as explain writes them: the value a calibration
    gives, or where the ceiling holds a quantity derived from it (t_dq), that quantity."""
    entries = {}
    for row in PARAMETERS:
        meaning, unit = (row.derived.doc, row.derived.unit) if row.derived else (row.doc, row.unit)
        mode = "datasheet (ideal) or achieved (calibrated)" if row.relative_to else "calibrated mode"
        entries[symbol_name(row)] = (f"{meaning} ({mode})", unit)
    return entries


REGENERATE = ("python -c \"from roofline.calibration_params import render_glossary as r; print(r(), end='')\" "
              "> docs/calibration-parameters.md")


def render_glossary():
    """docs/calibration-parameters.md: the table as Markdown."""
    lines = [
        "# Calibration parameters",
        "",
        "Generated from the table `PARAMETERS` in roofline/calibration_params.py; do not edit (a test fails "
        "when this file is not what the table renders). Regenerate it from the repository root with",
        "",
        f"    {REGENERATE}",
        "",
        "Calibrated mode's parameters, as a calibration file gives them (format: [spec-format.md]"
        "(spec-format.md#calibration-hardware_specscalibrationsidyaml)). The default is the ideal-mode value: "
        "what an absent key means. A value outside its range is refused with one line naming the field, "
        "the value and the range. `roofline explain` writes each as its symbol.",
        "",
        "| parameter | symbol | unit | default (ideal mode) | allowed range | fitted as | meaning |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in PARAMETERS:
        name = row.name + (f" (per {row.per})" if row.per else "") + (" (required)" if row.required else "")
        symbol = symbol_name(row) + (f" [{row.derived.unit}]" if row.derived else "")
        meaning = row.doc + (f"; {row.symbol}: {row.derived.doc}" if row.derived else "")
        lines.append(f"| {name} | {symbol} | {row.unit} | {default_text(row)} | {range_text(row)} | "
                     f"{fit_text(row)} | {meaning} |")
    lines += [
        "",
        "A ceiling's range is a share of the chip's datasheet figure: calibrated mode never runs faster "
        "than ideal mode. `fitted as` is how `roofline calibrate` moves a parameter (log: relative steps; "
        "value / scale: steps that may reach zero) and the box it searches. Adding a parameter is one row of "
        "`PARAMETERS` in roofline/calibration_params.py plus the formula that uses it.",
        "",
    ]
    return "\n".join(lines)

