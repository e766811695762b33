"""Calibrated mode: achievable ceilings and fixed costs, the physics the datasheet leaves out.

Ideal mode bounds an operator's time by datasheet peaks alone. Calibrated mode replaces them
with what a chip and its software actually reach, and adds the fixed costs a kernel sequence has:

- ``bandwidth`` [B/s]: achieved memory bandwidth of the operators of a forward pass; HBM parts
  reach 85-95% of the datasheet figure in a large streaming read, a whole step a little less.
- ``flops`` [FLOP/s] per dtype: achieved matmul rate of the operators of a forward pass (GEMMs
  and attention together). A dtype without a figure is scaled from its datasheet peak by the
  lowest efficiency (achieved / peak) of the listed ones.
- ``knee`` [1]: the exponent n of the smooth maximum t = (t_compute^n + t_memory^n)^(1/n) of an
  operator near its ridge point. A hard max (n -> infinity) predicts GEMMs at the critical batch
  size 15-20% fast: tiles, waves and the memory pipeline do not overlap compute perfectly.
- ``layer_overhead`` [s]: fixed time per decoder layer per step: kernel launches and the
  serialised prologues and tails of the ~10-15 kernels of a layer (independent of batch and context).
- ``step_overhead`` [s]: fixed time per forward pass (sampling, embedding, host sync).
- ``collective_overhead`` [s]: fixed software cost of one collective (an all-reduce or all-to-all
  launch and synchronisation), on top of the link's latency and bandwidth terms.
- ``link_latency`` [s]: one-hop latency between chips as fitted, replacing the link spec's value
  (often an assumption) in calibrated mode.
- ``kernel_overhead`` [s]: fixed time of one GEMM kernel timed on its own (launch, prologue, tail),
  fitted with the knee on the linear-layer sweep. It explains why a small fp8 GEMV looks slower
  than its bytes: 13.5 us of 90 on the H100. Whole steps carry it inside ``layer_overhead``, so
  it only applies to kernel rows.
- ``attention_efficiency`` [1]: the FLOP rate of fused attention (FlashAttention-style kernels:
  softmax, masking and online rescaling between the two matmuls) as a share of the matmul rate of
  its dtype; it matters where attention is compute-bound, in long prefills. Fitted when prefill
  rows are in the file, else 1.
- ``dequant_ops`` [1]: vector-unit operations per weight to dequantize weights stored in a format
  the matmul does not run natively (int8 / int4 weight-only kernels): t = weights x c / P_fp32,
  added to the operator's roofline time (step.dequant_time).

A calibration is a file of its own (format in docs/spec-format.md, "Calibration"), written by
`roofline calibrate` with its provenance: the device measured, the date, the measurement file and
the residuals of the fit. The chip's default calibration is ``calibrations/<chip id>.yaml`` found
like any spec (shipped ``hardware_specs/calibrations/``, then $ROOFLINE_SPECS and the user data
directory, which override it); `--calibration FILE` (API: ``calibration=``) picks another.
"""
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import RooflineError, SpecError, excerpt
from .specs import FieldReader, load_yaml, read_sources, resolve, spec_paths


@dataclass(frozen=True)
class Calibration:
    bandwidth: float                      # [B/s]
    flops: dict                           # dtype -> [FLOP/s]
    knee: float = float("inf")            # [1]
    layer_overhead: float = 0.0           # [s]
    step_overhead: float = 0.0            # [s]
    collective_overhead: float = 0.0      # [s]
    link_latency: float = None            # [s] None: the link spec's latency
    dequant_ops: float = 0.0              # [ops per weight] of weight-only quantized weights
    kernel_overhead: float = 0.0          # [s] fixed time of one GEMM kernel timed on its own
    attention_efficiency: float = 1.0     # [1] attention FLOP rate / matmul rate of its dtype
    source: str = ""                      # provenance: device, date, data file
    efficiency: float = 1.0               # achieved / peak matmul rate, for dtypes not measured
    hardware: str = ""                    # chip id the calibration belongs to
    device: str = ""                      # device name as measured
    path: str = None
    facts: tuple = ()

    def flops_for(self, dtype, peak):
        """Achievable FLOP/s of `dtype`: measured if known, else peak x measured efficiency."""
        return self.flops.get(dtype, peak * self.efficiency)


def efficiency_of(flops, peak_flops):
    """Lowest achieved / peak ratio of the dtypes in `flops` (1 when there are none) [1]."""
    ratios = [flops[d] / peak_flops[d] for d in flops if d in peak_flops]
    return min(ratios) if ratios else 1.0


def read_calibration(path, hardware):
    """The Calibration in file `path` for chip `hardware`; SpecError naming the field on bad input."""
    data = load_yaml(path)
    reader = FieldReader(data, path, read_sources(data, path))
    reader.seen.add("sources")
    chip = reader.text("hardware")
    if chip != hardware.id:
        reader._fail("hardware", f"this calibration is for '{chip}', not for '{hardware.id}'")
    device = reader.text("device")
    for key in ("date", "measurements"):
        reader.text(key, required=False)
    bandwidth = reader.quantity("bandwidth", "bandwidth")
    flops = _read_flops(reader, "flops", hardware)
    values = dict(knee=reader.quantity("knee", "number", required=False),
                  layer_overhead=reader.quantity("layer_overhead", "time", required=False, allow_zero=True),
                  step_overhead=reader.quantity("step_overhead", "time", required=False, allow_zero=True),
                  collective_overhead=reader.quantity("collective_overhead", "time", required=False, allow_zero=True),
                  link_latency=reader.quantity("link_latency", "time", required=False, allow_zero=True),
                  dequant_ops=reader.quantity("dequant_ops", "number", required=False, allow_zero=True),
                  kernel_overhead=reader.quantity("kernel_overhead", "time", required=False, allow_zero=True),
                  attention_efficiency=reader.quantity("attention_efficiency", "number", required=False))
    if values["attention_efficiency"] is not None and values["attention_efficiency"] > 1:
        reader._fail("attention_efficiency", f"{values['attention_efficiency']} must be at most 1 (a share of the "
                                             "matmul rate)")
    if values["knee"] is not None and values["knee"] < 1:
        reader._fail("knee", f"{values['knee']} must be at least 1 (1 adds the two times, infinity is a hard max)")
    measured = reader.sub("measured", required=False)
    if measured is not None:
        measured.quantity("bandwidth", "bandwidth", required=False)
        if measured.has("flops"):
            _read_flops(measured, "flops", hardware)
        measured.finish()
    if reader.raw("fit", required=False) is not None and not isinstance(data["fit"], dict):
        reader._fail("fit", "expected a mapping (the fit's provenance)")
    reader.finish()
    date = data.get("date")
    return Calibration(bandwidth=bandwidth, flops=flops, efficiency=efficiency_of(flops, hardware.peak_flops),
                       source=f"{Path(path).parent.name}/{Path(path).name} ({device}{', ' + str(date) if date else ''})", hardware=chip,
                       device=device, path=str(path), facts=tuple(reader.facts),
                       **{k: v for k, v in values.items() if v is not None})


def _read_flops(parent, key, hardware):
    rates = parent.sub(key)
    flops = {}
    for dtype in list(rates.data):
        if dtype not in hardware.peak_flops:
            rates._fail(dtype, f"{hardware.id} has no {dtype} peak in peak_flops to calibrate against")
        flops[dtype] = rates.quantity(dtype, "flops")
    if not flops:
        parent._fail(key, "expected at least one dtype with its FLOP/s, e.g. bf16: 640 TFLOP/s")
    rates.finish()
    return flops


def default_calibration(hardware):
    """The chip's default calibration (calibrations/<chip id>.yaml), or None if it has none."""
    path = spec_paths("calibration").get(hardware.id)
    return None if path is None else read_calibration(path, hardware)


def with_calibration(hardware, calibration):
    """`hardware` with `calibration` (a Calibration, a calibration id or a file path) in place.

    None leaves the chip's default calibration.
    """
    if calibration is None:
        return hardware
    if not isinstance(calibration, Calibration):
        try:
            path = resolve("calibration", calibration)
        except RooflineError:
            known = ", ".join(spec_paths("calibration")) or "none"
            raise RooflineError(f"calibration {excerpt(calibration)} is neither a file nor a known calibration id "
                                f"(known: {known})") from None
        calibration = read_calibration(path, hardware)
    elif calibration.hardware and calibration.hardware != hardware.id:
        raise SpecError(calibration.path or "calibration",
                        f"this calibration is for '{calibration.hardware}', not for '{hardware.id}'")
    return replace(hardware, calibration=calibration)


def quantity_entry(value, unit, source, note=None, derived=None, digits=4):
    """A spec-file quantity {value: '3.063 TB/s', source: ..., note: ...} for an SI magnitude."""
    from .units import format_si
    entry = {"value": format_si(value, unit, digits) if unit else float(f"{value:.{digits}g}"), "source": source}
    if derived:
        entry["derived"] = derived
    if note:
        entry["note"] = note
    return entry


def write_calibration(path, document, comment, hardware, force=False):
    """Write a calibration `document` (the file's mapping) to `path`, checked by reading it back.

    RooflineError, and nothing written, if `path` exists and not `force`, or if the document does
    not read back as a valid calibration of `hardware`.
    """
    import os
    import tempfile
    from pathlib import Path

    import yaml

    path = Path(path)
    if path.exists() and not force:
        raise RooflineError(f"{path} exists; use --force to replace it or --output to write elsewhere")
    if path.exists() and not path.is_file():
        raise RooflineError(f"{path} is not a file")
    text = "".join(f"# {line}\n" for line in comment.splitlines())
    for key, value in document.items():
        text += yaml.safe_dump({key: value}, sort_keys=False, default_flow_style=None if isinstance(value, (dict, list)) and key != "sources" else False,
                               width=10000, allow_unicode=True)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".calibration-", suffix=".yaml", dir=path.parent)
    except OSError as exc:
        raise RooflineError(f"{path}: cannot write there ({exc.strerror or exc.__class__.__name__})") from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        read_calibration(temporary, hardware)
        os.replace(temporary, path)
    except OSError as exc:
        raise RooflineError(f"{path}: cannot write ({exc.strerror or exc.__class__.__name__})") from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path
