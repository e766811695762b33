"""roofline validate: per-row predicted vs measured on the shipped H100 measurements and the published
A100 figures, the mapping of published names, and bad input."""
import json
import statistics

import pytest
from hypothesis import given, strategies as st

import roofline
from roofline.hardware import load_hardware
from roofline.device_names import device_matches
from roofline.measurements import _precision, read_measurements, row_filter
from roofline.validate import validate

from conftest import VALIDATION, run

H100_FILE = VALIDATION / "h100" / "llama-3.1-8b_and_kernels.jsonl"
A100_FILE = VALIDATION / "published" / "a100_gpt-fast_lmdeploy.csv"


def test_h100_rows_calibrated_meet_the_targets():
    """The shipped calibration on the shipped rows: decode median <= 4% and largest <= 10%, prefill <= 10%."""
    result = validate(read_measurements(H100_FILE), "h100-sxm", "calibrated")
    summary = {group: (n, median, top) for group, n, median, top, _ in result.summary()}
    assert summary["decode"][0] == 17 and summary["decode"][1] <= 0.04 and summary["decode"][2] <= 0.10
    assert summary["prefill"][0] == 3 and summary["prefill"][2] <= 0.10


def test_ideal_mode_is_a_lower_bound_on_every_h100_row():
    """Datasheet peaks and no fixed costs can only be faster than a real run: kernels included."""
    result = validate(read_measurements(H100_FILE), "h100-sxm", "ideal")
    assert len(result.rows) == 46
    assert not result.not_bounds
    assert all(c.error < 0 for c in result.rows)


def test_a100_published_rows_single_and_multichip_validated():
    result = validate(read_measurements(A100_FILE), None, "calibrated")
    assert {c.hardware for c in result.rows} == {"a100-sxm"}
    assert len(result.rows) == 35                                      # 19 single-chip, 16 tensor-parallel
    assert sum(c.row.chips > 1 for c in result.rows) == 16
    reasons = [s.reason for s in result.skipped]
    assert any("no chip spec matches device 'AMD MI250X (one GCD)'" in r for r in reasons)
    assert any("speculative decoding" in r for r in reasons)
    assert any("no model spec 'internlm-20b'" in r for r in reasons)
    assert not result.not_bounds            # ideal is faster than every published figure
    assert all(c.unit == "tok/s" for c in result.rows)


def test_a100_rows_within_twenty_percent_but_the_documented_ones():
    """A100 target 20%. Three rows miss it, each for a reason outside the chip (docs/validation.md):
    lmdeploy's batch-32/64 throughput includes up to 0.73 s of first-token spread among its
    concurrent clients, and gpt-fast's int4 kernel dequantizes below the bandwidth roofline."""
    result = validate(read_measurements(A100_FILE), "a100-sxm", "calibrated")
    misses = {(c.row.model, c.row.dtype, c.row.batch) for c in result.rows if abs(c.error) > 0.20 and c.row.chips == 1}
    assert misses <= {("llama-2-7b", "fp16", 32), ("llama-2-7b", "fp16", 64), ("llama-2-70b", "int4-g32", 1)}


def test_a100_tensor_parallel_rows():
    """The 16 rows on 2-8 GPUs (gpt-fast TP 2-8, lmdeploy TP 4) with the shipped calibration, which
    they help fit (they pin the per-collective cost). Ideal mode bounds every one from above (speed);
    calibrated within 9% median and 36% largest: lmdeploy's batch-64 throughput carries the
    first-token spread of its concurrent clients, as on one chip (docs/validation.md). gpt-fast and
    lmdeploy all-reduce through NCCL (the file's collectives column), whose ring latency grows with
    the GPU count; priced as the one-shot custom all-reduce instead (constant in it), gpt-fast's TP 2
    rows came out 12% slow and the median 9.6% (roofline.collectives). gpt-fast within 11.5%."""
    result = validate(read_measurements(A100_FILE), "a100-sxm", "calibrated")
    multi = [c for c in result.rows if c.row.chips > 1]
    assert len(multi) == 16
    assert all(c.ideal >= c.measured for c in multi)
    errors = [abs(c.error) for c in multi]
    assert statistics.median(errors) <= 0.09
    assert max(errors) <= 0.36
    assert all(abs(c.error) <= 0.115 for c in multi if "gpt-fast" in c.row.system)


def test_generation_rows_include_prefill_time():
    """lmdeploy's batch-1 figure falls from 102 to 86 tok/s when the prompt grows from 128 to 2048
    tokens: the prefill is inside the figure. The prediction must fall too."""
    result = validate(read_measurements(A100_FILE), "a100-sxm", "calibrated")
    per_user = {(c.row.context, c.row.output): c.predicted for c in result.rows
                if c.row.model == "llama-2-7b" and c.row.batch == 1 and c.row.output == 128}
    assert per_user[(2048, 128)] < 0.95 * per_user[(128, 128)]


def test_published_names_map_to_specs():
    rows = read_measurements(A100_FILE).rows
    assert {r.model for r in rows} == {"llama-2-7b", "llama-2-13b", "llama-2-70b"}
    assert _precision("int4 weight-only G=32") == ("int4-g32", {"weights": "int4-g32"})
    assert _precision("int8 weight-only") == ("int8", {"weights": "int8"})
    assert _precision("bf16 (Base)")[1] == {"weights": "bf16", "kv_cache": "bf16", "activations": "bf16"}
    assert _precision("fp16")[0] == "fp16"
    assert isinstance(_precision("q5_k_m"), str)


@pytest.mark.parametrize("device, chip, expected", [
    ("NVIDIA H100 80GB HBM3", "h100-sxm", True),
    ("NVIDIA H100 PCIe", "h100-sxm", False),
    ("NVIDIA H100 PCIe", "h100-pcie", True),
    ("NVIDIA H100 80GB HBM3", "h100-pcie", False),
    ("NVIDIA A100-SXM4-80GB", "a100-sxm", True),
    ("NVIDIA A100-SXM4-40GB", "a100-sxm", False),
    ("NVIDIA A100 80GB PCIe", "a100-sxm", False),
    ("NVIDIA A100-SXM 80GB (330 W cap)", "a100-sxm", True),
    ("NVIDIA GeForce RTX 4090", "rtx-4090", True),
    ("NVIDIA B200", "gb200", False),
    ("AMD Instinct MI300X", "mi300x", True),
    ("cpu", "h100-sxm", False),
])
def test_device_names(device, chip, expected):
    assert device_matches(device, load_hardware(chip)) is expected


@given(st.text(max_size=40))
def test_device_matching_never_raises(name):
    assert device_matches(name, load_hardware("h100-sxm")) in (True, False)


def test_row_filters():
    rows = read_measurements(H100_FILE).rows
    assert sum(row_filter("batch>=128")(r) for r in rows if r.kind == "decode_step") == 5
    assert sum(row_filter("kind=prefill")(r) for r in rows) == 3
    assert sum(row_filter("model != llama-3.1-8b")(r) for r in rows) == 0
    assert sum(row_filter("kind=decode_step,batch>=128")(r) for r in rows) == 5
    assert sum(row_filter("batch>=128")(r) for r in rows) == 5 + 8 + 5      # bf16 and fp8 linear rows too


def test_cli_table_json_and_csv():
    table = run("validate", "--measurements", H100_FILE, "--hardware", "h100-sxm")
    assert table.exit_code == 0, table.output
    assert "median |error|" in table.output and "decode" in table.output
    data = json.loads(run("validate", "-i", A100_FILE, "--format", "json").output)
    assert {s["group"] for s in data["summary"]} == {"published"}
    assert any("speculative decoding" in s["reason"] for s in data["skipped"])
    csv_text = run("validate", "-i", H100_FILE, "--mode", "ideal", "--format", "csv").output
    assert csv_text.splitlines()[0].startswith("row,hardware,mode,unit,measured,predicted,error")


def test_cli_lists_rows_where_ideal_is_not_a_bound(tmp_path):
    path = tmp_path / "impossible.jsonl"
    path.write_text(json.dumps({"kind": "decode_step", "model": "llama-3.1-8b", "batch": 1, "ctx": 1024,
                                "seconds": 0.001, "device": "NVIDIA H100 80GB HBM3"}) + "\n")
    result = run("validate", "-i", path, "--mode", "ideal")
    assert result.exit_code == 0
    assert "ideal mode is not a lower bound on time: decode llama-3.1-8b" in result.output


@pytest.mark.parametrize("content, message", [
    ("model,hardware\nx,y\n", "missing column(s) chips"),
    ('{"kind": "prefill", "model": "llama-3.1-8b", "prompt": 512, "seconds": 0.01}\n', "no device name"),
    ('{"kind": "warp_drive", "seconds": 1, "device": "cpu"}\n', "unknown kind 'warp_drive'"),
    ('{"kind": "copy", "bytes_moved": 1e9, "seconds": "fast", "device": "cpu"}\n', "seconds must be a number"),
])
def test_bad_files(tmp_path, content, message):
    path = tmp_path / ("bad.csv" if content.startswith("model") else "bad.jsonl")
    path.write_text(content)
    result = run("validate", "-i", path)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_rows_for_no_known_chip(tmp_path):
    path = tmp_path / "cpu.jsonl"
    path.write_text(json.dumps({"kind": "copy", "bytes_moved": 1e6, "seconds": 1e-3, "device": "cpu"}) + "\n")
    result = run("validate", "-i", path)
    assert result.exit_code == 2 and "no chip spec matches device 'cpu'" in result.output


def test_calibration_option_needs_hardware():
    result = run("validate", "-i", H100_FILE, "--calibration", "h100-sxm")
    assert result.exit_code == 2 and "--calibration needs --hardware" in result.output


def test_shape_run_with_fewer_layers_is_read_by_its_name(tmp_path):
    """measure_decode.py names a shape run with some of its layers 'llama-3.1-70b[20 layers]': the
    row is that model with 20 layers, predicted like `--set num_layers=20`."""
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"kind": "decode_step", "model": "llama-3.1-70b[20 layers]", "batch": 1, "ctx": 1024,
                                "seconds": 0.013, "device": "NVIDIA H100 80GB HBM3"}) + "\n")
    row = read_measurements(path).rows[0]
    assert (row.model, row.layers) == ("llama-3.1-70b", 20)
    checked = validate(read_measurements(path), "h100-sxm", "calibrated").rows[0]
    expected = roofline.decode("llama-3.1-70b", "h100-sxm", batch=1, context=1024,
                               overrides={"num_layers": "20"}).time_s
    assert checked.predicted == pytest.approx(expected, rel=1e-9)
