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
from .measurements import Skipped, chip_for_device, device_matches
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
        """Signed relative error of the prediction [1]."""
        return self.predicted / self.measured - 1

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
