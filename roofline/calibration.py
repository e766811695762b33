"""Calibrated mode: achievable ceilings and fixed costs, the physics the datasheet leaves out.

Ideal mode bounds an operator's time by datasheet peaks alone. Calibrated mode replaces them
with what a chip and its software actually reach (bandwidth, FLOP/s per dtype, attention's share
of the matmul rate), a smooth knee between the two roofs, and the fixed costs a kernel sequence
has (per layer, per step, per collective, per hop, per kernel, per dequantized weight). Each
parameter, what it stands for physically, its unit, default and allowed range is declared once,
in roofline.calibration_params (rendered in docs/calibration-parameters.md); this module reads
and checks them.

A calibration is a file of its own (format in docs/spec-format.md, "Calibration"), written by
`roofline calibrate` with its provenance: the device measured, the date, the measurement file and
the residuals of the fit. The chip's default calibration is ``calibrations/<chip id>.yaml`` found
like any spec (shipped ``hardware_specs/calibrations/``, then $ROOFLINE_SPECS and the user data
directory, which override it); `--calibration FILE` (API: ``calibration=``) picks another.
"""
from dataclasses import MISSING, replace
from pathlib import Path

from .calibration_params import PARAMETERS, range_text, with_parameter_fields
from .errors import RooflineError, SpecError, excerpt
from .readers import write_atomically
from .specs import FieldReader, load_yaml, read_sources, resolve, spec_paths
from .units import to_si

#: keys of a calibration file besides the parameters: who, when, from what (provenance)
PROVENANCE_KEYS = ("hardware", "device", "origin", "date", "measurements", "measured", "fit", "transfer", "sources")
#: the keys a per-key parameter may have on a chip, each with the datasheet figure that bounds it
PER_KEYS = {"dtype": lambda hardware: dict(hardware.peak_flops)}


@with_parameter_fields(lambda row: (row.name, MISSING if row.required else row.default))
class Calibration:
    """A chip's calibration: one field per calibration parameter (calibration_params.PARAMETERS,
    in SI units; `flops` maps dtype -> [FLOP/s]), then its provenance."""
    source: str = ""                      # provenance: device, date, data file
    efficiency: float = 1.0               # achieved / peak matmul rate, for dtypes not measured
    hardware: str = ""                    # chip id the calibration belongs to
    device: str = ""                      # device name as measured
    path: str = None
    facts: tuple = ()
    origin: str = "fitted"                # fitted | transferred from <chip> | published | assumed efficiency
    note: str = ""                        # one line on how a calibration not fitted here was derived

    def flops_for(self, dtype, peak):
        """Achievable FLOP/s of `dtype`: measured if known, else peak x measured efficiency."""
        return self.flops.get(dtype, peak * self.efficiency)


def efficiency_of(flops, peak_flops):
    """Lowest achieved / peak ratio of the dtypes in `flops` (1 when there are none) [1]."""
    ratios = [flops[d] / peak_flops[d] for d in flops if d in peak_flops]
    return min(ratios) if ratios else 1.0


def read_calibration(path, hardware):
    """The Calibration in file `path` for chip `hardware`; SpecError naming the field on bad input:
    an unknown key, a value of the wrong dimension or outside its range (calibration_params)."""
    data = load_yaml(path)
    reader = FieldReader(data, path, read_sources(data, path))
    reader.seen.add("sources")
    chip = reader.text("hardware")
    if chip != hardware.id:
        reader._fail("hardware", f"this calibration is for '{chip}', not for '{hardware.id}'")
    device = reader.text("device")
    origin = reader.text("origin", required=False, default="fitted")
    if not (origin in ("fitted", "published", "assumed efficiency") or origin.startswith("transferred from ")):
        reader._fail("origin", f"'{origin}' is not fitted, transferred from <chip>, published or assumed efficiency")
    for key in ("date", "measurements"):
        reader.text(key, required=False)
    _refuse_unknown_keys(reader)
    values = {row.name: _read_parameter(reader, row, hardware) for row in PARAMETERS}
    measured = reader.sub("measured", required=False)
    if measured is not None:
        measured.quantity("bandwidth", "bandwidth", required=False)
        if measured.has("flops"):
            _read_flops(measured, "flops", hardware)
        measured.finish()
    for provenance in ("fit", "transfer"):
        if reader.raw(provenance, required=False) is not None and not isinstance(data[provenance], dict):
            reader._fail(provenance, f"expected a mapping (the {provenance}'s provenance)")
    reader.finish()
    date = data.get("date")
    flops = values["flops"]
    return Calibration(efficiency=efficiency_of(flops, hardware.peak_flops),
                       source=f"{Path(path).parent.name}/{Path(path).name} ({device}{', ' + str(date) if date else ''})", hardware=chip,
                       device=device, path=str(path), facts=tuple(reader.facts), origin=origin,
                       note=str((data.get("transfer") or {}).get("note", "")),
                       **{k: v for k, v in values.items() if v is not None})


def _refuse_unknown_keys(reader):
    """SpecError on the first key that is neither a parameter nor provenance, suggesting the nearest."""
    known = [row.name for row in PARAMETERS] + list(PROVENANCE_KEYS)
    for key in map(str, reader.data):
        if key not in known:
            import difflib  # only for a suggestion (start-up time)

            near = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean '{near[0]}'? " if near else ""
            reader._fail(key[:60], f"unknown field; {hint}a calibration's parameters are "
                              f"{', '.join(row.name for row in PARAMETERS)} (docs/calibration-parameters.md)")


def _read_parameter(reader, row, hardware):
    """The SI value of parameter `row` in the file (a dict per key for a per-key row); None if absent."""
    if not row.per:
        reference = getattr(hardware, row.relative_to) if row.relative_to else None
        return _read_value(reader, row.name, row, reference, f"{hardware.id}'s datasheet {row.name}")
    keys = PER_KEYS[row.per](hardware)
    mapping = reader.sub(row.name, required=row.required)
    if mapping is None:
        return None
    values = {}
    for key in map(str, mapping.data):
        if key not in keys:
            mapping._fail(key, f"{hardware.id} has no {row.per} {key} in its {row.relative_to} to calibrate "
                               f"against; expected one of {', '.join(keys)}")
        values[key] = _read_value(mapping, key, row, keys[key], f"{hardware.id}'s datasheet {key} {row.name}")
    if not values:
        reader._fail(row.name, f"expected at least one {row.per} with its value, e.g. bf16: 640 TFLOP/s")
    mapping.finish()
    return values


def _read_value(reader, key, row, reference, reference_name):
    """SI value of one quantity of parameter `row` under `key`, checked against its dimension and range."""
    entry = reader.raw(key, required=row.required or row.per is not None)
    if entry is None:
        return None
    text = entry.get("value") if isinstance(entry, dict) else entry
    try:
        value = reader.value_of(entry, key, row.dimension, positive=False)
    except SpecError:
        if text is not None and not _has_dimension(text, row.dimension):
            reader._fail(key, f"{text!r} is not a {row.dimension}; expected a {row.dimension} [{row.unit}] of "
                              f"{range_text(row, reference, reference_name)}")
        raise
    low, high = row.lower, row.upper
    if row.relative_to:
        low, high = low * reference, high * reference
    if value < low or (row.lower_open and value == low) or value > high:
        reader._fail(key, f"{text!r} is out of range; expected {range_text(row, reference, reference_name)}")
    return value


def _has_dimension(text, dimension):
    try:
        to_si(text, dimension)
    except RooflineError:
        return False
    return True


def _read_flops(parent, key, hardware):
    """Provenance FLOP/s per dtype (the `measured` block): checked for dimension, not range."""
    rates = parent.sub(key)
    flops = {}
    for dtype in list(rates.data):
        if dtype not in hardware.peak_flops:
            rates._fail(dtype, f"{hardware.id} has no {dtype} peak in peak_flops to calibrate against")
        flops[dtype] = rates.quantity(dtype, "flops")
    rates.finish()
    return flops


def default_calibration(hardware):
    """The chip's default calibration (calibrations/<chip id>.yaml), or None if it has none."""
    path = spec_paths("calibration").get(hardware.id)
    return None if path is None else read_calibration(path, hardware)


def calibration_path(calibration):
    """Path of a calibration file or id; RooflineError naming the known ids if it is neither."""
    try:
        return resolve("calibration", calibration)
    except RooflineError:
        known = ", ".join(spec_paths("calibration")) or "none"
        raise RooflineError(f"calibration {excerpt(calibration)} is neither a file nor a known calibration id "
                            f"(known: {known})") from None


def with_calibration(hardware, calibration):
    """`hardware` with `calibration` (a Calibration, a calibration id or a file path) of that chip in place.

    None leaves the chip's default calibration. roofline.transfer.with_calibration also takes
    another chip's calibration and transfers it.
    """
    if calibration is None:
        return hardware
    if not isinstance(calibration, Calibration):
        calibration = read_calibration(calibration_path(calibration), hardware)
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
    write_atomically(path, lambda out: out.write(text), check=lambda written: read_calibration(written, hardware))
    return path
