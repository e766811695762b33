"""The calibration parameter table (roofline/calibration_params.py) and what it drives: the
calibration reader refuses a parameter of the wrong dimension, outside its range or unknown in one
line (exit 2 through the CLI), reads every value inside its range back exactly, agrees with the
fitter's search boxes, explain's symbols and the generated docs/calibration-parameters.md."""
import dataclasses
import math
from pathlib import Path

import pytest
import sympy
import yaml
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st

from roofline import calibration_params
from roofline.calibration import Calibration, read_calibration
from roofline.calibration_params import PARAMETERS, REGENERATE, parameter, render_glossary
from roofline.cli import cli
from roofline.errors import SpecError
from roofline.explain import GLOSSARY
from roofline.hardware import load_hardware
from roofline.specs import spec_paths
from roofline.step import Ceilings, ceilings
from roofline.units import to_si

from conftest import ROOT

SHIPPED = Path(spec_paths("calibration")["h100-sxm"])
SCALARS = [row for row in PARAMETERS if not row.relative_to]


def _decode_with(tmp_path, old, new):
    """`roofline decode` on the H100 with its shipped calibration, `old` replaced by `new`."""
    text = SHIPPED.read_text()
    assert old in text
    bad = tmp_path / "h100-sxm.yaml"
    bad.write_text(text.replace(old, new))
    return CliRunner().invoke(cli, ["decode", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--calibration", str(bad)])


def _one_line(result, *needles):
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# ---------------------------------------------------------------------------- bad input, one line each
@pytest.mark.parametrize("old, new, needles", [
    # out of range: 55.55 s per layer is a unit slip (55.55 us); 10 ms per layer would already be
    # 0.3 s of fixed cost per token on 32 layers
    ("layer_overhead: {value: 55.55 us", "layer_overhead: {value: 55.55 s",
     ["layer_overhead", "'55.55 s'", "out of range", "at least 0 s and at most 10 ms"]),
    # a knee below 1 would make the smooth maximum exceed the sum of the two times
    ("knee: {value: 4.87", "knee: {value: 0.5", ["knee", "0.5", "out of range", "at least 1"]),
    # calibrated mode cannot stream faster than the datasheet (3.35 TB/s)
    ("bandwidth: {value: 3.072 TB/s", "bandwidth: {value: 4 TB/s",
     ["bandwidth", "'4 TB/s'", "at most 3.35 TB/s", "datasheet"]),
    ("bf16: {value: 663.2 TFLOP/s", "bf16: {value: 1.2 PFLOP/s",
     ["flops.bf16", "'1.2 PFLOP/s'", "at most 989.4 TFLOP/s"]),
    ("attention_efficiency: {value: 0.6057", "attention_efficiency: {value: 0",
     ["attention_efficiency", "more than 0 and at most 1"]),
], ids=["time-above-range", "knee-below-one", "bandwidth-above-datasheet", "flops-above-peak", "zero-share"])
def test_parameter_outside_its_range_is_refused(tmp_path, old, new, needles):
    _one_line(_decode_with(tmp_path, old, new), *needles)


@pytest.mark.parametrize("old, new, needles", [
    ("layer_overhead: {value: 55.55 us", "layer_overhead: {value: 5 GB",
     ["layer_overhead", "'5 GB' is not a time", "at least 0 s and at most 10 ms"]),
    ("knee: {value: 4.87", "knee: {value: 4.87 us", ["knee", "'4.87 us' is not a number", "at least 1"]),
    ("bandwidth: {value: 3.072 TB/s", "bandwidth: {value: 3.072 TFLOP/s",
     ["bandwidth", "'3.072 TFLOP/s' is not a bandwidth", "at most 3.35 TB/s"]),
    ("step_overhead: {value: 0 s", "step_overhead: {value: 5", ["step_overhead", "5 is not a time", "at most 1 s"]),
], ids=["bytes-for-a-time", "time-for-a-number", "flops-for-a-bandwidth", "bare-number-for-a-time"])
def test_parameter_of_the_wrong_dimension_is_refused(tmp_path, old, new, needles):
    _one_line(_decode_with(tmp_path, old, new), *needles)


def test_unknown_parameter_is_refused_with_the_nearest_name(tmp_path):
    line = _one_line(_decode_with(tmp_path, "layer_overhead: {value:", "layer_overhed: {value:"),
                     "layer_overhed", "unknown field", "did you mean 'layer_overhead'")
    assert all(row.name in line for row in PARAMETERS)


# ---------------------------------------------------------------------------- reading values back
def _file(tmp_path, name, text):
    doc = {"hardware": "h100-sxm", "device": "test", "bandwidth": "3 TB/s", "flops": {"bf16": "600 TFLOP/s"},
           name: text, "sources": {"test": "tests/test_calibration_params.py"}}
    doc = {key: value if isinstance(value, dict) or key in ("hardware", "device", "sources")
           else {"value": value, "source": "test"} for key, value in doc.items()}
    doc["flops"] = {"bf16": {"value": "600 TFLOP/s", "source": "test"}}
    path = tmp_path / "calibration.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _as_text(row, value):
    return value if row.unit == "1" else f"{value!r} {row.unit}"


@st.composite
def _inside(draw):
    row = draw(st.sampled_from(SCALARS))
    upper = row.upper if math.isfinite(row.upper) else 1e6
    return row, draw(st.floats(row.lower, upper, exclude_min=row.lower_open, allow_nan=False))


@settings(max_examples=40, deadline=None)
@given(case=_inside())
def test_every_value_inside_its_range_reads_back_exactly(tmp_path_factory, case):
    row, value = case
    path = _file(tmp_path_factory.mktemp("c"), row.name, _as_text(row, value))
    assert getattr(read_calibration(path, load_hardware("h100-sxm")), row.name) == value


@st.composite
def _outside(draw):
    row = draw(st.sampled_from(SCALARS))
    below = draw(st.floats(-1e3, row.lower, exclude_max=not row.lower_open, allow_nan=False))
    if not math.isfinite(row.upper):
        return row, below
    above = draw(st.floats(row.upper, 1e6, exclude_min=True, allow_nan=False))
    return row, draw(st.sampled_from([below, above]))


@settings(max_examples=40, deadline=None)
@given(case=_outside())
def test_every_value_outside_its_range_is_refused_naming_it(tmp_path_factory, case):
    row, value = case
    path = _file(tmp_path_factory.mktemp("c"), row.name, _as_text(row, value))
    with pytest.raises(SpecError, match=f"{row.name}: .* is out of range; expected "):
        read_calibration(path, load_hardware("h100-sxm"))


@pytest.mark.parametrize("chip", ["h100-sxm", "a100-sxm", "wse-3"])
def test_shipped_calibrations_read_back_to_the_numbers_they_state(chip):
    """Each parameter of a shipped file, converted on its own (units.to_si), is the value read, and
    every parameter the file leaves out is at its ideal-mode default."""
    hardware = load_hardware(chip)
    data = yaml.safe_load(Path(hardware.calibration.path).read_text())
    for row in PARAMETERS:
        read = getattr(hardware.calibration, row.name)
        if row.name not in data:
            assert read == row.default
        elif row.per:
            assert read == {key: to_si(entry["value"], row.dimension) for key, entry in data[row.name].items()}
        else:
            assert read == to_si(data[row.name]["value"], row.dimension)


# ---------------------------------------------------------------------------- what the table drives
def test_fitter_searches_inside_the_range_a_file_may_give():
    """`roofline calibrate` writes what the reader accepts: every search box lies inside its range
    (a ceiling's box ends at the best kernel rate, at most the datasheet)."""
    for row in PARAMETERS:
        rule = row.fit
        assert rule.lower <= rule.start <= rule.upper, row.name
        assert rule.lower >= row.lower and rule.upper <= row.upper, row.name
        assert rule.lower > row.lower or not row.lower_open, row.name


def test_defaults_are_the_ideal_ceilings():
    """An ideal-mode Ceilings holds every parameter's default, and a calibration that gives only the
    required parameters runs the calibrated ceilings at those defaults."""
    hardware = load_hardware("h100-sxm")
    ideal = ceilings(hardware, "ideal")
    for row in PARAMETERS:
        if not row.required:
            assert getattr(ideal, row.ceiling_field) == row.ceiling_default
    bare = Calibration(bandwidth=3e12, flops={"bf16": 6e14})
    calibrated = ceilings(dataclasses.replace(hardware, calibration=bare), "calibrated")
    assert calibrated.bandwidth == 3e12 and calibrated.flops["bf16"] == 6e14
    assert all(getattr(calibrated, row.ceiling_field) == row.ceiling_default for row in PARAMETERS
               if not row.required)


def test_calibration_and_ceilings_have_a_field_per_parameter_in_table_order():
    names = [f.name for f in dataclasses.fields(Calibration)]
    assert names[:len(PARAMETERS)] == [row.name for row in PARAMETERS]
    assert [f.name for f in dataclasses.fields(Ceilings)] == ["mode"] + [row.ceiling_field for row in PARAMETERS] \
        + ["collectives", "overlap"]      # how the engine runs its collectives: a Scenario's options
    assert parameter("dequant_ops").ceiling_field == "dequant_time"


def test_symbols_read_back_and_are_in_explains_glossary():
    """Each symbol parses back with sympy.sympify as itself (no reserved name such as E, I, N, S, Q)
    and has a meaning and unit in explain's glossary."""
    for row in PARAMETERS:
        assert sympy.sympify(row.symbol) == sympy.Symbol(row.symbol)
        meaning, unit = GLOSSARY[calibration_params.symbol_name(row)]
        assert meaning and unit


def test_committed_glossary_is_what_the_table_renders():
    committed = (ROOT / "docs" / "calibration-parameters.md").read_text()
    assert committed == render_glossary(), f"docs/calibration-parameters.md is stale; regenerate: {REGENERATE}"
    assert "calibration-parameters.md" in (ROOT / "docs" / "spec-format.md").read_text()


def test_a_fitted_calibration_states_every_parameter_it_determined(tmp_path):
    """The A100 fit (35 published rows) determines fixed costs per layer, step and collective and the
    dequantization cost: the file calibrate writes states each, and reads back to the fitted
    ceilings (4 significant digits: 1e-3 relative); the knee, held at infinity, is left out."""
    from roofline.calibrate import calibrate, document, prepare
    from roofline.calibration import write_calibration
    from roofline.measurements import read_measurements

    from conftest import VALIDATION

    hardware = load_hardware("a100-sxm")
    data = read_measurements(VALIDATION / "published" / "a100_gpt-fast_lmdeploy.csv")
    steps, kernels, _, _ = prepare(data, hardware)
    fit = calibrate(steps, kernels, hardware)
    doc, comment = document(fit, data)
    assert {"layer_overhead", "step_overhead", "collective_overhead", "dequant_ops"} <= set(doc)
    assert "knee" not in doc and "docs/calibration-parameters.md" in comment
    path = write_calibration(tmp_path / "a100-sxm.yaml", doc, comment, hardware)
    read = ceilings(dataclasses.replace(hardware, calibration=read_calibration(path, hardware)), "calibrated")
    for row in PARAMETERS:
        fitted, stated = getattr(fit.ceiling, row.ceiling_field), getattr(read, row.ceiling_field)
        if row.per:     # the dtypes the fit determined (the file scales the others by their efficiency)
            assert {d: stated[d] for d in doc["flops"]} == pytest.approx({d: fitted[d] for d in doc["flops"]},
                                                                         rel=1e-3)
        else:
            assert stated == fitted or stated == pytest.approx(fitted, rel=1e-3, abs=1e-12), row.name


def test_flops_of_a_dtype_the_chip_has_no_peak_of_is_refused(tmp_path):
    _one_line(_decode_with(tmp_path, "bf16: {value: 663.2 TFLOP/s", "bf17: {value: 663.2 TFLOP/s"),
              "flops.bf17", "no dtype bf17", "expected one of fp32, tf32, bf16, fp16, fp8, int8")
