"""Fit calibrated mode to measurements: ceilings from kernels, the rest by least squares.

Three steps, each physical:

1. Kernel rows set the ceilings. The fastest copy or read of the file is the chip's achievable
   bandwidth; the fastest matmul or linear layer per dtype its achievable FLOP/s. A step cannot
   stream or multiply faster than its best kernel, so these bound the fit from above.
2. The linear-layer sweep sets the knee: with the kernel ceilings fixed, the exponent n of
   t = ((F/P)^n + (Q/BW)^n)^(1/n) and a fixed time per kernel are fitted to the sweep's rows
   (the knee is a property of how the GEMM library overlaps loads with math, not of the model).
3. decode_step, prefill and published rows fit the rest by least squares on log(predicted /
   measured) (roofline.fit): the bandwidth and FLOP/s a whole forward pass reaches (bf16 and fp16
   share one efficiency: the same tensor-core path), the knee when no sweep set it, the fixed
   time per layer and, when the rows' layer counts differ enough, per step.

A parameter the rows cannot determine (changing it by 100% moves no prediction by 0.1%, or
every row has the same layer count so per-layer and per-step costs are one number) is held: at
its kernel value, at infinity for the knee (the hard roofline maximum), at zero for a fixed cost.
Per-layer and per-step costs are told apart only by rows whose layer counts differ by 1.5x or
more (roofline measure adds half-depth rows for this); closer counts leave them collinear.
The fit needs more rows than free parameters (at least one row to spare).
"""
import math
import statistics
import textwrap
from dataclasses import dataclass, field, replace

import numpy as np

from .errors import RooflineError
from .fit import Parameter, least_squares
from .device_names import device_matches
from .measurements import KERNEL_KINDS, Skipped
from .predict import placeable, row_model
from .calibration_params import PARAMETERS, default_text, parameter
from .specs import portable_path
from .step import Ceilings, calibrated_ceilings, ceilings

#: dtypes that run on the same tensor-core path and share one fitted efficiency
TIED_DTYPES = (("bf16", "fp16"),)
#: a parameter whose 100% change moves no prediction by this much (log) is not determined
SENSITIVITY = 1e-3
MIN_SWEEP = 4               # batch sizes a linear-layer sweep needs to set the knee
LAYER_SPREAD = 1.5          # per-step cost is fitted when the layer counts differ by this factor


@dataclass(frozen=True)
class KernelFit:
    """What the kernel rows say: best bandwidth [B/s], best FLOP/s per dtype, the knee."""
    bandwidth: float = None
    bandwidth_row: object = None
    flops: dict = field(default_factory=dict)
    flops_rows: dict = field(default_factory=dict)
    knee: float = None
    kernel_overhead: float = None     # [s] fixed time per GEMM kernel in the sweep
    knee_rows: int = 0


@dataclass(frozen=True)
class CalibrationFit:
    """A fitted calibration with everything its provenance needs."""
    hardware: object
    ceiling: Ceilings                 # the fitted ceilings (mode 'calibrated')
    kernels: KernelFit
    fit_models: tuple                 # RowModels of the rows fitted
    held_out_models: tuple            # RowModels held out of the fit
    held: dict                        # parameter -> why it was not fitted
    fitted: tuple                     # names of the fitted parameters
    iterations: int
    derived: dict                     # dtype -> how its FLOP/s was derived
    at_bound: tuple = ()              # fitted parameters that ended on a bound
    values: dict = field(default_factory=dict)   # parameter -> value as a file states it (not the ceilings)


def select_rows(measurements, hardware):
    """(rows measured on `hardware`, rows measured elsewhere); RooflineError if none is on it."""
    mine = [r for r in measurements.rows if device_matches(r.device, hardware)]
    other = [r for r in measurements.rows if not device_matches(r.device, hardware)]
    if not mine:
        devices = ", ".join(sorted({r.device for r in other}))
        raise RooflineError(f"{measurements.path}: no rows for {hardware.id} ({hardware.name}); the rows are for "
                            f"{devices} (a device matches a chip when its name carries the chip id's part "
                            "number, e.g. 'NVIDIA H100 80GB HBM3' for h100-sxm)")
    return mine, other


def kernel_fit(models, hardware):
    """Ceilings and knee from kernel RowModels (copy, read_reduce, matmul, linear)."""
    bandwidth, bandwidth_row, flops, flops_rows = None, None, {}, {}
    for m in models:
        row = m.row
        if row.kind in ("copy", "read_reduce"):
            rate = row.shape[0] / row.seconds
            if bandwidth is None or rate > bandwidth:
                bandwidth, bandwidth_row = rate, row
        else:
            rate = 2 * math.prod(row.shape) / row.seconds
            if rate > flops.get(row.dtype, 0):
                flops[row.dtype], flops_rows[row.dtype] = rate, row
    sweep = [m for m in models if m.row.kind == "linear"]
    knee = overhead = None
    if len({m.row.batch for m in sweep}) >= MIN_SWEEP:
        base = Ceilings("calibrated", bandwidth or hardware.mem_bandwidth, {**hardware.peak_flops, **flops})

        def residuals(v):
            c = replace(base, knee=v["knee"])
            return [math.log((m.time(c) + v["kernel_overhead"]) / m.row.seconds) for m in sweep]
        result = least_squares(residuals, [fit_parameter("knee"), fit_parameter("kernel_overhead")])
        if not result.converged:
            raise RooflineError(f"the knee fit to the {len(sweep)} linear-layer rows did not converge "
                                f"({result.message}); check their times")
        knee, overhead = result.values["knee"], result.values["kernel_overhead"]
    return KernelFit(bandwidth, bandwidth_row, flops, flops_rows, knee, overhead, len(sweep))


def fit_parameter(name, top=None, datasheet=None, label=None):
    """The fit's Parameter for calibration parameter `name`, by its FitRule (calibration_params).

    A ceiling (bandwidth, FLOP/s) starts at a share of `top`, the best rate the kernel rows allow
    (at most the datasheet), and is searched between a share of `datasheet` and `top`. `label`
    names a parameter fitted per group of dtypes ('flops:bf16+fp16').
    """
    row = parameter(name)
    rule = row.fit
    if row.relative_to:
        return Parameter(label or name, rule.start * top, rule.lower * datasheet, rule.upper * top, rule.log,
                         rule.scale)
    return Parameter(label or name, rule.start, rule.lower, rule.upper, rule.log, rule.scale)


def _groups(step_models):
    """Compute dtypes the step rows' operators use, grouped so tied dtypes share one parameter."""
    used = sorted({op.dtype for m in step_models for _, forward in m.passes for op in forward.operators
                   if op.kind != "elementwise"})
    groups = []
    for dtype in used:
        tie = next((t for t in TIED_DTYPES if dtype in t), (dtype,))
        group = tuple(d for d in tie if d in used or d == dtype)
        if group not in groups:
            groups.append(group)
    return groups


def calibrate(step_models, kernel_models, hardware, held_out_models=(), max_iterations=100, progress=None):
    """Fit a calibration to RowModels of step rows (decode_step, prefill, published) and kernels.

    `progress`, if given, is called at each evaluation of the residuals (the CLI's progress line)."""
    kernels = kernel_fit(kernel_models, hardware)
    peaks = hardware.peak_flops
    bw_top = min(kernels.bandwidth, hardware.mem_bandwidth) if kernels.bandwidth else hardware.mem_bandwidth
    parameters, held = [fit_parameter("bandwidth", top=bw_top, datasheet=hardware.mem_bandwidth)], {}
    groups = _groups(step_models)
    for group in groups:
        lead = group[0]
        top = min(peaks[lead], kernels.flops.get(lead, peaks[lead]))
        parameters.append(fit_parameter("flops", top=top, datasheet=peaks[lead], label=f"flops:{'+'.join(group)}"))
    if kernels.knee is None:
        held["knee"] = (f"hard maximum: no linear-layer sweep over {MIN_SWEEP}+ batch sizes in the file (whole steps "
                        "cannot tell the knee from the ceilings; measure one with roofline measure)")
    else:
        held["knee"] = f"from the linear-layer sweep ({kernels.knee_rows} rows), with the kernel ceilings"
    if hardware.kind == "wafer":        # a wafer's per-layer cost is its GEMVs crossing the mesh (roofline.wafer)
        parameters.append(fit_parameter("mesh_traversal"))
        held["layer_overhead"] = ("0: on a wafer a layer costs its GEMVs' crossings of the cores that hold their "
                                  "matrices (mesh_traversal), not a fixed time per layer")
    else:
        parameters.append(fit_parameter("layer_overhead"))
    layouts = [layout for m in step_models for layout in m.layouts]
    if any(layout.pp > 1 for layout in layouts) and hardware.kind == "wafer":
        held["link_latency"] = ("each link spec's own latency: with the mesh crossings in, speeds on unpublished "
                                "wafer counts do not determine a hop (the fit drives it to 0 us, or to 17 us "
                                "without the Llama 4 Maverick row)")
    elif any(layout.pp > 1 for layout in layouts):
        parameters.append(fit_parameter("link_latency"))
    if any(layout.tp > 1 for layout in layouts):
        parameters.append(fit_parameter("collective_overhead"))
    if any(m.row.kind == "prefill" for m in step_models):
        parameters.append(fit_parameter("attention_efficiency"))
    if "fp32" in peaks and any(_dequantizes(m) for m in step_models):
        parameters.append(fit_parameter("dequant_ops"))
    layer_counts = sorted({forward.layers for m in step_models for _, forward in m.passes})
    if layer_counts[-1] >= LAYER_SPREAD * layer_counts[0]:
        parameters.append(fit_parameter("step_overhead"))
    else:
        low, high = layer_counts[0], layer_counts[-1]
        span = f"{low}" if low == high else f"{low} to {high} (less than {LAYER_SPREAD}x apart)"
        held["step_overhead"] = (f"0: the rows have {span} layers, so per-layer and per-step costs are one number; "
                                 "measure another layer count (--layers) to separate them")

    def ceiling_of(values):
        flops = dict(peaks)
        for group in groups:
            rate = values.get(f"flops:{'+'.join(group)}", min(peaks[group[0]], kernels.flops.get(group[0], math.inf)))
            for dtype in group:
                flops[dtype] = rate * peaks[dtype] / peaks[group[0]]
        ratio = _step_to_kernel_ratio(values, groups, kernels)
        for dtype, rate in kernels.flops.items():
            if not any(dtype in g for g in groups):
                flops[dtype] = rate * ratio
        knee = values.get("knee", kernels.knee if kernels.knee is not None else math.inf)
        values = {"bandwidth": bw_top, **values}        # held (no row's time depends on it): at its ceiling
        return calibrated_ceilings({**values, "flops": flops, "knee": knee,
                                    "kernel_overhead": kernels.kernel_overhead or 0.0}, peaks)

    def residuals(values):
        if progress is not None:
            progress()
        c = ceiling_of(values)
        # a floor row ('>N') is met by any time at or below its own: only a slower prediction is a residual
        return [max(r, 0.0) if m.row.floor else r
                for m, r in ((m, math.log(m.time(c) / m.measured_time)) for m in step_models)]

    parameters = _drop_undetermined(parameters, residuals, held)
    if len(step_models) < len(parameters) + 1:
        names = ", ".join(p.name.replace("flops:", "FLOP/s of ") for p in parameters)
        raise RooflineError(f"too few rows to fit: {len(step_models)} decode/prefill row(s) for {len(parameters)} free "
                            f"parameters ({names}); calibrate needs at least {len(parameters) + 1}")
    result = least_squares(residuals, parameters, max_iterations=max_iterations)
    if not result.converged:
        raise RooflineError(f"the fit did not converge ({result.message}); check that the rows are of this chip "
                            "and their times are right, or give more iterations (--max-iterations)")
    values = {"bandwidth": bw_top, **result.values}
    ceiling = ceiling_of(values)
    derived = _derived_flops(ceiling, kernels, groups, values)
    stated = {row.name: values.get(row.name, row.default) for row in PARAMETERS if not row.relative_to}
    stated.update(knee=ceiling.knee, kernel_overhead=kernels.kernel_overhead)
    return CalibrationFit(hardware, ceiling, kernels, tuple(step_models), tuple(held_out_models), held,
                          tuple(p.name for p in parameters), result.iterations, derived, result.at_bound, stated)


def _dequantizes(row_model):
    """Whether a row runs weight-only quantized GEMMs (weights dequantized before the matmul)."""
    return any(op.dequantized for _, forward in row_model.passes for op in forward.operators)


def _drop_undetermined(parameters, residuals, held):
    """The parameters the rows determine; the others are recorded in `held` with the reason."""
    start = {p.name: p.start for p in parameters}
    base = np.asarray(residuals(start))
    keep = []
    for p in parameters:
        probe = dict(start)
        probe[p.name] = p.to_value(p.to_internal(p.start) + (math.log(2.0) if p.log else 1.0))
        change = np.max(np.abs(np.asarray(residuals(probe)) - base))
        per_unit = change / (math.log(2.0) if p.log else 1.0)
        if per_unit < SENSITIVITY:
            row = parameter(p.name.split(":")[0])
            held[p.name] = ("not determined by these rows (no row's time depends on it): "
                            + ("held at its ceiling" if row.relative_to else f"held at {default_text(row)}"))
        else:
            keep.append(p)
    return keep


def _step_to_kernel_ratio(values, groups, kernels):
    """Fitted step FLOP/s over the kernel maximum of the same dtype (mean over fitted groups; 1 if none).

    A dtype measured only by kernels (fp8 linear sweeps) is scaled by it: a forward pass reaches the
    same fraction of its best kernel in every dtype (smaller GEMMs, attention, waves).
    """
    ratios = [values[f"flops:{'+'.join(g)}"] / kernels.flops[g[0]] for g in groups
              if f"flops:{'+'.join(g)}" in values and g[0] in kernels.flops]
    return sum(ratios) / len(ratios) if ratios else 1.0


def _derived_flops(ceiling, kernels, groups, values):
    """How each dtype's calibrated FLOP/s was obtained (for the file's provenance)."""
    notes = {}
    for group in groups:
        name = f"flops:{'+'.join(group)}"
        how = "fitted" if name in values else "held at its ceiling (not determined by the rows)"
        for dtype in group:
            notes[dtype] = how if dtype == group[0] else f"{how} (same efficiency as {group[0]})"
    ratio = _step_to_kernel_ratio(values, groups, kernels)
    for dtype in kernels.flops:
        scaled = f" x {ratio:.3f} (fitted / kernel rate of the fitted dtypes)" if ratio != 1.0 else ""
        notes.setdefault(dtype, f"kernel maximum ({kernels.flops_rows[dtype].label}){scaled}")
    return {d: notes[d] for d in ceiling.flops if d in notes}


def signed_errors(models, ceiling):
    """Signed relative errors of the predicted figures (predicted / measured - 1); 0 for a floor row
    ('>N') the prediction meets."""
    errors = [m.figure(ceiling) / m.measured - 1 for m in models]
    return [0.0 if m.row.met_floor(e) else e for m, e in zip(models, errors)]


def summary(errs):
    """{'rows', 'median', 'max'} of absolute errors (None when there are no rows)."""
    if not errs:
        return {"rows": 0, "median": None, "max": None}
    magnitudes = [abs(e) for e in errs]
    return {"rows": len(errs), "median": statistics.median(magnitudes), "max": max(magnitudes)}


def before_after(fit, current=None):
    """Error summaries of the fitted and held-out rows: ideal, `current` calibration, and fitted."""
    ideal = ceilings(fit.hardware, "ideal")
    out = {}
    for label, models in (("fit", fit.fit_models), ("held_out", fit.held_out_models)):
        if not models:
            continue
        out[label] = {"ideal": summary(signed_errors(models, ideal)),
                      "current": summary(signed_errors(models, current)) if current is not None else None,
                      "fitted": summary(signed_errors(models, fit.ceiling))}
    return out


def prepare(measurements, hardware, hold_out=()):
    """(step RowModels, kernel RowModels, held-out RowModels, Skipped rows) of a file: rows of other
    devices and multi-chip rows no layout of the chip can hold are skipped.

    `hold_out` is a list of predicates on Measurement: rows any of them accepts are held out.
    """
    mine, other = select_rows(measurements, hardware)
    mine, unplaced = placeable(mine, hardware)
    skipped = [Skipped(r.where, r.label, f"measured on {r.device}") for r in other] + unplaced
    kept = [r for r in mine if not any(test(r) for test in hold_out)]
    held_rows = [r for r in mine if any(test(r) for test in hold_out)]
    steps = [row_model(r, hardware) for r in kept if r.is_step]
    kernel_rows = [row_model(r, hardware) for r in kept if r.kind in KERNEL_KINDS]
    held_models = [row_model(r, hardware) for r in held_rows if r.is_step]
    if not steps:
        raise RooflineError(f"{measurements.path}: no decode_step, prefill or published rows for {hardware.id} "
                            "to fit (kernel rows alone set ceilings, not fixed costs); measure whole steps "
                            "with roofline measure")
    return steps, kernel_rows, held_models, skipped


AT_BOUND = "ended on a bound of the fit (the best kernel or datasheet figure above, zero below): the rows do not pull it in"


def document(fit, measurements, current=None, hold_out=(), today=None, note=None):
    """(mapping, comment) of the calibration file of `fit`: values with sources, and provenance."""
    import datetime

    from . import __version__
    from .calibration import quantity_entry

    c, k = fit.ceiling, fit.kernels
    devices = sorted({m.row.device for m in fit.fit_models})
    device = measurements.header.get("device") or "; ".join(devices)
    fitted = set(fit.fitted)
    doc = {"hardware": fit.hardware.id, "device": device,
           "date": today or datetime.date.today().isoformat(), "measurements": portable_path(measurements.path)}
    doc["bandwidth"] = quantity_entry(c.bandwidth, "B/s", "fit" if "bandwidth" in fitted else "measurements",
                                      note=_bandwidth_note(fit))
    bound = {d for g in fit.at_bound if g.startswith("flops:") for d in g[6:].split("+")}
    doc["flops"] = {d: quantity_entry(c.flops[d], "FLOP/s", "fit" if how.startswith("fitted") else "measurements",
                                      derived=how if not how.startswith("fitted") else None,
                                      note=AT_BOUND if d in bound else None)
                    for d, how in fit.derived.items()}
    if not doc["flops"]:
        doc["flops"] = {d: quantity_entry(c.flops[d], "FLOP/s", "datasheet", note="not determined by the rows (no "
                                          "compute-bound row): the datasheet peak")
                        for d in fit.hardware.peak_flops}
    doc.update(_parameter_entries(fit))
    if k.bandwidth or k.flops:
        measured = {}
        if k.bandwidth:
            measured["bandwidth"] = quantity_entry(k.bandwidth, "B/s", "measurements", note=k.bandwidth_row.label)
        if k.flops:
            measured["flops"] = {d: quantity_entry(v, "FLOP/s", "measurements", note=k.flops_rows[d].label)
                                 for d, v in k.flops.items()}
        doc["measured"] = measured
    doc["fit"] = _provenance(fit, measurements, current, hold_out)
    doc["sources"] = {
        "datasheet": f"{portable_path(fit.hardware.path)} (peak_flops)",
        "measurements": f"{portable_path(measurements.path)} ({device}"
                        + (f", measured {measurements.header['date']}" if measurements.header.get("date") else "") + ")",
        "fit": f"roofline {__version__} calibrate: kernel ceilings, knee from the linear-layer sweep, least squares "
               "on log(predicted / measured) over the rows listed under fit"}
    comment = (f"Calibration of {fit.hardware.id} ({fit.hardware.name}) written by roofline calibrate.\n"
               "Format: docs/spec-format.md, 'Calibration'; parameters: docs/calibration-parameters.md.\n"
               "Values under 'measured' and 'fit' are provenance.\n"
               + (textwrap.fill(f"Note: {note}", 100) if note else ""))
    if note:
        doc["fit"]["note"] = note
    return doc, comment


def _parameter_entries(fit):
    """{name: file entry} of every parameter besides the ceilings that the fit determined (from the
    kernel rows: source 'measurements'; by least squares: 'fit'), held with a reason, or moved off
    its default; the note says why it was held or that it ended on a bound."""
    from .calibration import quantity_entry

    from_kernels = {"knee", "kernel_overhead"} if fit.kernels.knee is not None else set()
    entries = {}
    for row in PARAMETERS:
        value = fit.values.get(row.name)
        if row.relative_to or value is None or not math.isfinite(value):
            continue
        if row.name in from_kernels or row.name in fit.fitted or row.name in fit.held or value != row.default:
            note = fit.held.get(row.name) or (AT_BOUND if row.name in fit.at_bound else None)
            entries[row.name] = quantity_entry(value, None if row.unit == "1" else row.unit,
                                               "measurements" if row.name in from_kernels else "fit", note=note,
                                               digits=row.digits)
    return entries


def _bandwidth_note(fit):
    k = fit.kernels
    if k.bandwidth:
        return (f"whole-step streaming bandwidth, {100 * fit.ceiling.bandwidth / k.bandwidth:.1f}% of the "
                f"best kernel ({k.bandwidth_row.label}) and {100 * fit.ceiling.bandwidth / fit.hardware.mem_bandwidth:.1f}"
                "% of the datasheet")
    return f"whole-step streaming bandwidth, {100 * fit.ceiling.bandwidth / fit.hardware.mem_bandwidth:.1f}% of the datasheet"


def _round(value, digits=4):
    return None if value is None else float(f"{value:.{digits}g}")


def _provenance(fit, measurements, current, hold_out):
    counts = {}
    for m in fit.fit_models:
        counts[m.row.kind] = counts.get(m.row.kind, 0) + 1
    kernel_counts = {}
    for row in measurements.rows:
        if row.kind in KERNEL_KINDS:
            kernel_counts[row.kind] = kernel_counts.get(row.kind, 0) + 1
    stats = before_after(fit, current)
    out = {"method": "Levenberg-Marquardt on log(predicted / measured) (roofline.fit)",
           "rows": counts, "kernel_rows": kernel_counts, "fitted": list(fit.fitted),
           "held": dict(fit.held), "at_bound": list(fit.at_bound), "iterations": fit.iterations}
    if hold_out:
        out["held_out_rows"] = list(hold_out)
    for label, summaries in stats.items():
        out[f"error_{label}"] = {k: None if v is None else {"rows": v["rows"], "median": _round(v["median"], 3),
                                                             "max": _round(v["max"], 3)}
                                 for k, v in summaries.items()}
    out["residuals"] = [{"row": m.row.label, "error": _round(e, 3)}
                        for m, e in zip(fit.fit_models, signed_errors(fit.fit_models, fit.ceiling))]
    return out
