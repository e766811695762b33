"""roofline calibrate: the fit recovers known parameters, meets the accuracy targets on shapes it has
not seen, reproduces the shipped calibrations, and refuses bad input with one line and exit 2."""
import json
import math
import statistics
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st

from roofline.calibrate import calibrate, prepare, signed_errors
from roofline.calibration import read_calibration
from roofline.cli import cli
from roofline.fit import Parameter, least_squares
from roofline.hardware import load_hardware, read_hardware
from roofline.measurements import read_measurements, row_filter
from roofline.predict import row_model
from roofline.step import Ceilings

from conftest import VALIDATION

H100_FILE = VALIDATION / "h100" / "llama-3.1-8b_and_kernels.jsonl"
A100_FILE = VALIDATION / "published" / "a100_gpt-fast_lmdeploy.csv"
H100 = "NVIDIA H100 80GB HBM3"


def run(*args):
    return CliRunner().invoke(cli, list(map(str, args)))


# ---------------------------------------------------------------------------- the fitter
def test_least_squares_recovers_an_exponential_and_respects_bounds():
    x = np.linspace(0, 4, 30)
    y = 3.0 * np.exp(-0.7 * x)
    fit = least_squares(lambda v: v["a"] * np.exp(-v["k"] * x) - y,
                        [Parameter("a", 1.0, 0.1, 10.0), Parameter("k", 0.1, 0.01, 5.0)])
    assert fit.converged
    assert fit.values["a"] == pytest.approx(3.0, rel=1e-6)
    assert fit.values["k"] == pytest.approx(0.7, rel=1e-6)
    bounded = least_squares(lambda v: v["a"] * np.exp(-v["k"] * x) - y,
                            [Parameter("a", 1.0, 0.1, 2.0), Parameter("k", 0.1, 0.01, 5.0)])
    assert bounded.values["a"] == pytest.approx(2.0) and "a" in bounded.at_bound


def test_least_squares_reports_non_convergence():
    x = np.linspace(0, 4, 30)
    fit = least_squares(lambda v: v["a"] * np.exp(-v["k"] * x) - 3.0 * np.exp(-0.7 * x),
                        [Parameter("a", 1.0, 0.1, 10.0), Parameter("k", 0.1, 0.01, 5.0)], max_iterations=1)
    assert not fit.converged and "did not converge" in fit.message


# ---------------------------------------------------------------------------- synthetic measurements
TRUE = dict(kernel_bandwidth=3.0e12, kernel_flops=720e12, kernel_overhead=10e-6,
            bandwidth=2.9e12, flops=610e12, knee=4.5, layer_overhead=50e-6, step_overhead=120e-6,
            attention_efficiency=0.6)


def _synthetic_rows():
    rows = [{"kind": "device", "device": H100, "date": "2025-01-01"},
            {"kind": "read_reduce", "bytes_moved": 4e9, "seconds": 1.0},
            {"kind": "matmul", "m": 8192, "n": 8192, "k": 8192, "seconds": 1.0}]
    rows += [{"kind": "linear", "batch": b, "k": 8192, "n": 28672, "seconds": 1.0}
             for b in (1, 16, 64, 128, 192, 256, 384, 512, 1024, 2048)]
    for layers in (32, 16):
        rows += [{"kind": "decode_step", "model": "llama-3.1-8b", "layers": layers, "batch": b, "ctx": c, "seconds": 1.0}
                 for b, c in ((1, 1024), (1, 32768), (8, 4096), (32, 1024), (64, 4096), (128, 1024), (256, 1024),
                              (512, 512))]
    rows += [{"kind": "prefill", "model": "llama-3.1-8b", "layers": 32, "prompt": p, "seconds": 1.0}
             for p in (512, 2048, 8192)]
    return rows


def write_synthetic(path, noise=0.01, seed=0, true=TRUE):
    """Rows whose times the model itself computes from `true`, times lognormal noise of `noise`."""
    hardware = load_hardware("h100-sxm")
    rows = _synthetic_rows()
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    kernel = Ceilings("calibrated", true["kernel_bandwidth"], {**hardware.peak_flops, "bf16": true["kernel_flops"]},
                      true["knee"])
    step = Ceilings("calibrated", true["bandwidth"], {**hardware.peak_flops, "bf16": true["flops"]}, true["knee"],
                    true["layer_overhead"], true["step_overhead"],
                    attention_efficiency=true.get("attention_efficiency", 1.0))
    rng = np.random.default_rng(seed)
    for row, measured in zip(rows[1:], read_measurements(path).rows):
        model = row_model(measured, hardware)
        if measured.is_step:
            t = model.time(step)
        else:
            t = model.time(kernel) + (true["kernel_overhead"] if measured.kind == "linear" else 0)
        row["seconds"] = t * math.exp(rng.normal(0, noise)) if measured.kind not in ("read_reduce", "matmul") else t
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_fit_recovers_known_parameters_from_noisy_synthetic_measurements(tmp_path):
    """1% lognormal noise on 34 timed rows: the fitted ceilings land within a few percent of the truth
    (their standard errors are ~0.3%; the tolerances allow 5-10 of them) and the fixed costs
    within 10 us (a 1% error on a 7 ms step is 70 us spread over 32 layers and 16 rows)."""
    path = write_synthetic(tmp_path / "synthetic.jsonl")
    hardware = load_hardware("h100-sxm")
    steps, kernels, _, _ = prepare(read_measurements(path), hardware)
    fit = calibrate(steps, kernels, hardware)
    c = fit.ceiling
    assert c.bandwidth == pytest.approx(TRUE["bandwidth"], rel=0.02)
    assert c.flops["bf16"] == pytest.approx(TRUE["flops"], rel=0.05)
    assert c.knee == pytest.approx(TRUE["knee"], rel=0.15)
    assert c.layer_overhead == pytest.approx(TRUE["layer_overhead"], abs=10e-6)
    assert c.step_overhead == pytest.approx(TRUE["step_overhead"], abs=150e-6)
    assert c.attention_efficiency == pytest.approx(TRUE["attention_efficiency"], rel=0.15)
    assert set(fit.fitted) == {"bandwidth", "flops:bf16", "layer_overhead", "step_overhead", "attention_efficiency"}
    assert statistics.median(abs(e) for e in signed_errors(fit.fit_models, c)) < 0.015


def test_noise_free_synthetic_data_is_fitted_exactly(tmp_path):
    path = write_synthetic(tmp_path / "exact.jsonl", noise=0.0)
    hardware = load_hardware("h100-sxm")
    steps, kernels, _, _ = prepare(read_measurements(path), hardware)
    fit = calibrate(steps, kernels, hardware)
    assert fit.kernels.knee == pytest.approx(TRUE["knee"], rel=1e-3)
    assert fit.ceiling.bandwidth == pytest.approx(TRUE["bandwidth"], rel=1e-3)
    assert fit.ceiling.layer_overhead == pytest.approx(TRUE["layer_overhead"], rel=1e-2)
    assert max(abs(e) for e in signed_errors(fit.fit_models, fit.ceiling)) < 1e-3


@settings(max_examples=6, deadline=None)
@given(bandwidth=st.floats(1.5e12, 2.95e12), flops=st.floats(300e12, 700e12), knee=st.floats(2.0, 8.0),
       layer_overhead=st.floats(5e-6, 150e-6), step_overhead=st.floats(0.0, 400e-6))
def test_noise_free_fit_recovers_any_parameters(tmp_path_factory, bandwidth, flops, knee, layer_overhead,
                                                step_overhead):
    """Whatever the truth inside the fit's bounds, noise-free rows give it back: ceilings to 1%, fixed
    costs to 5 us (the knee comes from the kernel sweep's own fit, to ~0.1%, and the per-layer and
    per-step costs of 32- and 16-layer rows trade a few us between them)."""
    true = dict(TRUE, bandwidth=bandwidth, flops=flops, knee=knee, layer_overhead=layer_overhead,
                step_overhead=step_overhead)
    path = write_synthetic(tmp_path_factory.mktemp("h") / "rows.jsonl", noise=0.0, true=true)
    hardware = load_hardware("h100-sxm")
    steps, kernels, _, _ = prepare(read_measurements(path), hardware)
    c = calibrate(steps, kernels, hardware).ceiling
    assert c.bandwidth == pytest.approx(bandwidth, rel=0.01)
    assert c.flops["bf16"] == pytest.approx(flops, rel=0.01)
    assert c.knee == pytest.approx(knee, rel=0.01)
    assert c.layer_overhead == pytest.approx(layer_overhead, abs=5e-6)
    assert c.step_overhead == pytest.approx(step_overhead, abs=5e-6)


def test_cli_writes_a_calibration_that_later_queries_use(tmp_path):
    path = write_synthetic(tmp_path / "synthetic.jsonl")
    out = tmp_path / "mine.yaml"
    result = run("calibrate", "--hardware", "h100-sxm", "--measurements", path, "--output", out)
    assert result.exit_code == 0, result.output
    assert "error before: ideal" in result.output and "error after" in result.output and f"wrote {out}" in result.output
    calibration = read_calibration(out, load_hardware("h100-sxm"))
    assert calibration.device == H100
    assert calibration.bandwidth == pytest.approx(TRUE["bandwidth"], rel=0.02)
    decoded = run("decode", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--calibration", out, "--format", "json")
    shipped = run("decode", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--format", "json")
    assert json.loads(decoded.output)["step_time_s"] != json.loads(shipped.output)["step_time_s"]


def test_default_output_is_the_chips_user_calibration(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    path = write_synthetic(tmp_path / "synthetic.jsonl")
    assert run("calibrate", "-c", "h100-sxm", "-i", path).exit_code == 0
    written = tmp_path / "data" / "roofline" / "hardware_specs" / "calibrations" / "h100-sxm.yaml"
    assert written.is_file()
    assert read_hardware("h100-sxm").calibration.path == str(written)  # not the cached chip


# ---------------------------------------------------------------------------- shipped data
def _h100_fit(hold_out):
    hardware = load_hardware("h100-sxm")
    steps, kernels, held, _ = prepare(read_measurements(H100_FILE), hardware, [row_filter(hold_out)])
    return calibrate(steps, kernels, hardware, held)


def test_shipped_h100_calibration_is_what_calibrate_fits():
    hardware = load_hardware("h100-sxm")
    steps, kernels, _, _ = prepare(read_measurements(H100_FILE), hardware)
    fit = calibrate(steps, kernels, hardware)
    shipped = hardware.calibration
    assert shipped.bandwidth == pytest.approx(fit.ceiling.bandwidth, rel=1e-3)
    assert shipped.flops["bf16"] == pytest.approx(fit.ceiling.flops["bf16"], rel=1e-3)
    assert shipped.knee == pytest.approx(fit.ceiling.knee, rel=1e-2)
    assert shipped.layer_overhead == pytest.approx(fit.ceiling.layer_overhead, rel=1e-3)


def test_h100_held_out_large_batches():
    """Fit on all kernels, prefill and decode at batch <= 64; the 5 decode rows at batch 128-512 (where
    the GEMMs cross the knee) meet the project's targets: median <= 4%, largest <= 10%."""
    fit = _h100_fit("kind=decode_step,batch>=128")
    held = [abs(e) for e in signed_errors(fit.held_out_models, fit.ceiling)]
    assert len(held) == 5 and len(fit.fit_models) == 15
    assert statistics.median(held) <= 0.04
    assert max(held) <= 0.10


def test_h100_held_out_prefill_within_eleven_percent():
    """Fit on kernels and decode only: prefill's long causal attention runs below the GEMM rate the
    decode rows see, so the prefill rows land 3-11% fast (docs/validation.md); 11% bounds that."""
    fit = _h100_fit("kind=prefill")
    held = signed_errors(fit.held_out_models, fit.ceiling)
    assert len(held) == 3
    assert max(abs(e) for e in held) <= 0.11
    assert all(e < 0 for e in held)


def _a100_fit(hold_out=None):
    """The shipped A100 calibration is fitted to all 35 published single- and multi-chip rows."""
    hardware = load_hardware("a100-sxm")
    filters = [row_filter(hold_out)] if hold_out else []
    steps, kernels, held, _ = prepare(read_measurements(A100_FILE), hardware, filters)
    return calibrate(steps, kernels, hardware, held)


def test_a100_fit_on_7b_predicts_13b_within_twenty_percent():
    """Fit on the Llama-2-7B rows; the Llama-2-13B rows (lmdeploy, fp16, batch 1-64) are a shape the
    fit has not seen. Target: every one within 20%."""
    fit = _a100_fit("model!=llama-2-7b")
    held = {m.row.where: e for m, e in zip(fit.held_out_models, signed_errors(fit.held_out_models, fit.ceiling))
            if m.row.model == "llama-2-13b"}
    assert len(held) == 5
    assert max(abs(e) for e in held.values()) <= 0.20


def test_a100_fit_on_7b_predicts_70b_within_twenty_percent():
    """The Llama-2-70B rows (gpt-fast bf16/int8/int4 on 1-8 GPUs, lmdeploy fp16 on 4) are a shape and
    chip counts the 7B fit has not seen. Target 20%, but for lmdeploy's batch-64 throughput rows,
    whose figure carries the first-token spread of 64 concurrent clients (docs/validation.md)."""
    fit = _a100_fit("model!=llama-2-7b")
    rows = [(m.row, e) for m, e in zip(fit.held_out_models, signed_errors(fit.held_out_models, fit.ceiling))
            if m.row.model == "llama-2-70b"]
    assert len(rows) == 15
    assert all(abs(e) <= 0.20 for row, e in rows if row.batch < 64)
    int4 = [e for row, e in rows if row.dtype == "int4-g32" and row.chips == 1]
    assert int4 and abs(int4[0]) <= 0.15       # weight-only dequantization is now modelled


def test_a100_single_chip_fit_predicts_tensor_parallel_rows():
    """Fit on the 19 single-chip rows, predict the 16 tensor-parallel ones: within 22% (upper) median
    and 62% largest. One chip cannot tell a fixed cost per layer from one per collective: the
    single-chip fit puts the fixed time in a per-step cost, the one-shot all-reduces (3 crossings of
    the assumed 3 us NVLink latency) stay below what the engines spend, and the 4-GPU lmdeploy rows
    come out 16-60% fast until the tensor-parallel rows join the fit. The largest, lmdeploy 70B at
    batch 64, includes the first-token spread of its concurrent clients (docs/validation.md)."""
    fit = _a100_fit("chips>1")
    errors = sorted(abs(e) for e in signed_errors(fit.held_out_models, fit.ceiling))
    assert len(errors) == 16
    assert errors[len(errors) // 2] <= 0.22
    assert errors[-1] <= 0.62


def test_a100_dequantization_is_physical():
    """Weight-only int8/int4 kernels dequantize every weight on the CUDA cores: the fit finds about
    2-3 fp32 operations per weight (unpack, scale, zero point), not zero and not dozens."""
    fit = _a100_fit()
    ops = fit.ceiling.dequant_time * load_hardware("a100-sxm").peak_flops["fp32"]
    assert ops >= 1.0 and ops <= 5.0


def test_shipped_a100_calibration_is_what_calibrate_fits():
    fit = _a100_fit()
    shipped = load_hardware("a100-sxm").calibration
    assert shipped.bandwidth == pytest.approx(fit.ceiling.bandwidth, rel=1e-3)
    assert shipped.layer_overhead == pytest.approx(fit.ceiling.layer_overhead, rel=1e-3)
    assert shipped.collective_overhead == pytest.approx(fit.ceiling.collective_overhead, rel=1e-3, abs=1e-9)
    assert shipped.dequant_ops == pytest.approx(fit.ceiling.dequant_time * 19.5e12, rel=1e-3)


# ---------------------------------------------------------------------------- bad input
def _bad(tmp_path, rows, *extra):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "out.yaml"
    result = run("calibrate", "-c", "h100-sxm", "-i", path, "-o", out, *extra)
    assert result.exit_code == 2, result.output
    assert not out.exists()
    message = result.output.strip()
    assert message.startswith("error: ") and "\n" not in message and "Traceback" not in message
    return message


def test_missing_fields(tmp_path):
    message = _bad(tmp_path, [{"kind": "decode_step", "model": "llama-3.1-8b", "batch": 1, "seconds": 0.01,
                               "device": H100}])
    assert "line 1" in message and "'ctx'" in message


def test_zero_and_negative_times(tmp_path):
    for seconds in (0, -0.004):
        message = _bad(tmp_path, [{"kind": "decode_step", "model": "llama-3.1-8b", "batch": 1, "ctx": 8,
                                   "seconds": seconds, "device": H100}])
        assert "seconds must be a number greater than zero" in message


def test_rows_for_another_device(tmp_path):
    rows = [{"kind": "decode_step", "model": "llama-3.1-8b", "batch": b, "ctx": 1024, "seconds": 0.01,
             "device": "NVIDIA A100-SXM4-80GB"} for b in (1, 2, 4, 8, 16, 32)]
    message = _bad(tmp_path, rows)
    assert "no rows for h100-sxm" in message and "NVIDIA A100-SXM4-80GB" in message


def test_too_few_rows(tmp_path):
    rows = [{"kind": "decode_step", "model": "llama-3.1-8b", "batch": b, "ctx": 1024, "seconds": 0.008,
             "device": H100} for b in (1, 64)]
    message = _bad(tmp_path, rows)
    assert "too few rows to fit: 2" in message and "needs at least " in message


def test_fit_that_does_not_converge(tmp_path):
    rows = [json.loads(line) for line in write_synthetic(tmp_path / "s.jsonl").read_text().splitlines()]
    message = _bad(tmp_path, rows, "--max-iterations", "1")
    assert "did not converge" in message


def test_nonexistent_file(tmp_path):
    result = run("calibrate", "-c", "h100-sxm", "-i", tmp_path / "missing.jsonl", "-o", tmp_path / "o.yaml")
    assert result.exit_code == 2 and "does not exist" in result.output and not (tmp_path / "o.yaml").exists()


def test_output_exists_without_force(tmp_path):
    path = write_synthetic(tmp_path / "synthetic.jsonl")
    out = tmp_path / "out.yaml"
    out.write_text("keep me\n")
    result = run("calibrate", "-c", "h100-sxm", "-i", path, "-o", out)
    assert result.exit_code == 2 and "exists; use --force" in result.output
    assert out.read_text() == "keep me\n"
    assert run("calibrate", "-c", "h100-sxm", "-i", path, "-o", out, "--force").exit_code == 0


def test_bad_hold_out_filter(tmp_path):
    result = run("calibrate", "-c", "h100-sxm", "-i", H100_FILE, "-o", tmp_path / "o.yaml", "--hold-out", "speed>3")
    assert result.exit_code == 2 and "expected FIELD OP VALUE" in result.output


def test_measure_without_torch_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "torch", None)       # import torch -> ImportError
    result = run("measure", "--model", "llama-3.1-8b")
    assert result.exit_code == 2 and "pip install 'roofline[measure]'" in result.output


def test_calibration_file_with_a_share_above_one_is_refused(tmp_path):
    """attention_efficiency is a share of the matmul rate: a file that says 1.4 is refused, one line,
    naming the file and the field, and decode with it exits 2."""
    shipped = Path(load_hardware("h100-sxm").calibration.path).read_text()
    bad = tmp_path / "h100-sxm.yaml"
    bad.write_text(shipped.replace("attention_efficiency: {value: 0.6057", "attention_efficiency: {value: 1.4"))
    result = run("decode", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--calibration", bad)
    assert result.exit_code == 2
    assert "attention_efficiency" in result.output and "at most 1" in result.output
    assert len(result.output.strip().splitlines()) == 1
