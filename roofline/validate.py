"""Predicted against measured, row by row: the validation table of a measurement file.

For every row the model can predict, the measured figure (seconds, or tokens/s for published
rows), the prediction in the chosen mode, the ideal-mode prediction and the signed error
(predicted / measured - 1: positive = predicted slower for times, faster for rates). Then the
median and largest absolute error per kind of row, and the rows where ideal mode is not a lower
bound on time (ideal slower than the measurement: a bug in a spec or in the model). Rows the
model cannot predict (several chips, unknown models or devices) are listed with the reason.
"""
import statistics
from dataclasses import dataclass

from .transfer import with_calibration
from .errors import RooflineError
from .hardware import load_hardware
from .device_names import chip_for_device, device_matches
from .measurements import Skipped
from .predict import placeable, row_model
from .step import MODES, ceilings


@dataclass(frozen=True)
class CheckedRow:
    """One validated row."""
    row: object                # Measurement
    hardware: str              # chip id it was predicted on
    mode: str                  # mode actually used (ideal when the chip has no calibration)
    measured: float
    predicted: float
    ideal: float
    unit: str                  # s | tok/s

    @property
    def error(self):
        """Signed relative error of the prediction [1]; 0 for a floor row ('>N') the prediction meets."""
        error = self.predicted / self.measured - 1
        return 0.0 if self.row.met_floor(error) else error

    @property
    def ideal_is_bound(self):
        """True when ideal mode is at least as fast as the measurement (a lower bound on time)."""
        return self.ideal <= self.measured if self.unit == "s" else self.ideal >= self.measured


@dataclass(frozen=True)
class Validation:
    path: str
    mode: str
    rows: tuple                # of CheckedRow
    skipped: tuple             # of Skipped

    def groups(self):
        """{group: [CheckedRow]}: decode, prefill, published, kernels."""
        out = {}
        for checked in self.rows:
            out.setdefault(group_of(checked.row), []).append(checked)
        return out

    def summary(self):
        """[(group, rows, median |error|, max |error|, rows where ideal is not a bound)]."""
        lines = []
        for group, rows in self.groups().items():
            errors = [abs(c.error) for c in rows]
            lines.append((group, len(rows), statistics.median(errors), max(errors),
                          sum(not c.ideal_is_bound for c in rows)))
        return lines

    @property
    def not_bounds(self):
        return [c for c in self.rows if not c.ideal_is_bound]


def group_of(row):
    """Summary group of a Measurement: decode, prefill, published or kernels."""
    return {"decode_step": "decode", "prefill": "prefill", "generation": "published"}.get(row.kind, "kernels")


def validate(measurements, hardware=None, mode="calibrated", calibration=None, progress=None):
    """Validate every row of a MeasurementFile on `hardware` (id/Hardware), or on the chip each row's
    device names when `hardware` is None. `calibration` (file or id) replaces the chip's default.
    `progress`, if given, is called once per row (the CLI's progress line)."""
    if mode not in MODES:
        raise RooflineError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    chip = None if hardware is None else (hardware if not isinstance(hardware, str) else load_hardware(hardware))
    if chip is not None:
        chip = with_calibration(chip, calibration)
    checked, skipped = [], list(measurements.skipped)
    for row in measurements.rows:
        if progress is not None:
            progress()
        target = chip
        if target is None:
            chip_id = chip_for_device(row.device)
            if chip_id is None:
                skipped.append(Skipped(row.where, row.label, f"no chip spec matches device '{row.device}'"))
                continue
            target = with_calibration(load_hardware(chip_id), calibration)
        elif not device_matches(row.device, target):
            skipped.append(Skipped(row.where, row.label, f"measured on '{row.device}', not on {target.id}"))
            continue
        placed, unplaced = placeable([row], target)
        if unplaced:
            skipped += unplaced
            continue
        checked.append(_check(row, target, mode))
    if not checked:
        reasons = "; ".join(sorted({s.reason for s in skipped})) or "no rows"
        raise RooflineError(f"{measurements.path}: no row to validate ({reasons})")
    return Validation(measurements.path, mode, tuple(checked), tuple(skipped))


def _check(row, hardware, mode):
    model = row_model(row, hardware)
    used = mode if hardware.calibration is not None else "ideal"
    predicted = model.figure(ceilings(hardware, used))
    ideal = model.figure(ceilings(hardware, "ideal"))
    return CheckedRow(row, hardware.id, used, model.measured, predicted, ideal,
                      "s" if model.rate_numerator is None else "tok/s")


#: the fixed costs whose effect on each answer leave_one_model_out reports (a wafer fits mesh_traversal,
#: a GPU layer_overhead)
FIXED_COSTS = ("step_overhead", "layer_overhead", "mesh_traversal", "link_latency")
#: the relative change of a fitted constant at which its effect on an answer is shown
NUDGE = 0.2


@dataclass(frozen=True)
class LeftOut:
    """One model's rows predicted by a fit that did not see them.

    in_sample / left_out: signed errors (predicted / measured - 1) of its rows under the fit of
    every row, and under the fit without this model; constants: the fixed costs [s] the fit
    without it found; sensitivity: {constant: (figure at -NUDGE, at +NUDGE) / figure - 1} of the
    model's first row under the fit of every row."""
    model: str
    rows: int
    measured: tuple
    in_sample: tuple
    left_out: tuple
    constants: dict
    sensitivity: dict


def leave_one_model_out(measurements, hardware, hold_out=()):
    """For every model with rows in the fit: refit calibrated mode without its rows (calibrate.
    calibrate, the same rows, parameters and bounds as `roofline calibrate`) and predict them.

    `hold_out`: row predicates held out of every fit (as the shipped calibration holds them, e.g.
    'date<2025'). Returns (list of LeftOut, the fit of every row). The held-out error of a model is
    what the fit would say about a model it has never seen; the sensitivity says how far each
    fitted constant moves an answer: (t(c (1 +- 0.2)) / t(c) - 1) in the row's figure.
    """
    from .calibrate import calibrate, prepare, signed_errors
    from .measurements import row_filter

    chip = hardware if not isinstance(hardware, str) else load_hardware(hardware)
    filters = [row_filter(h) if isinstance(h, str) else h for h in hold_out]
    steps, kernels, held, _ = prepare(measurements, chip, filters)
    whole = calibrate(steps, kernels, chip, held)
    models = sorted({m.row.model for m in steps})
    if len(models) < 3:
        raise RooflineError(f"leaving one model out needs rows of at least 3 models on {chip.id}, got {len(models)}")
    out = []
    for name in models:
        mine = [m for m in steps if m.row.model == name]
        rest = [m for m in steps if m.row.model != name]
        fit = calibrate(rest, kernels, chip, [])
        out.append(LeftOut(name, len(mine), tuple(m.measured for m in mine),
                           tuple(signed_errors(mine, whole.ceiling)), tuple(signed_errors(mine, fit.ceiling)),
                           {c: getattr(fit.ceiling, c) for c in shown_costs(whole)},
                           sensitivity(mine[0], whole.ceiling)))
    return out, whole


def shown_costs(fit):
    """The fixed costs of FIXED_COSTS a leave-one-model-out table shows for `fit`: per step and per hop,
    and per layer or, on a wafer, per mesh crossing (whichever the fit fitted)."""
    per_layer = "mesh_traversal" if "mesh_traversal" in fit.fitted else "layer_overhead"
    return ("step_overhead", per_layer, "link_latency")


def sensitivity(row_model_, ceiling):
    """{constant: (relative change of the figure at constant x (1 - NUDGE), at x (1 + NUDGE))} of
    one RowModel under `ceiling`, for each fixed cost in FIXED_COSTS that is set."""
    from dataclasses import replace

    base = row_model_.figure(ceiling)
    out = {}
    for name in FIXED_COSTS:
        value = getattr(ceiling, name)
        if not value:
            continue
        out[name] = tuple(row_model_.figure(replace(ceiling, **{name: value * f})) / base - 1
                          for f in (1 - NUDGE, 1 + NUDGE))
    return out
