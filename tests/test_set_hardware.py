"""What-if in one line: `--set hardware.FIELD=VALUE` changes a chip field, checked for its dimension."""
import json

import pytest
from click.testing import CliRunner

from roofline.cli import cli
from roofline.errors import RooflineError
from roofline.hardware import load_hardware, split_overrides, with_overrides

DECODE = ["decode", "-m", "llama-3.1-8b", "-c", "h100-sxm"]


def as_json(*args):
    result = CliRunner().invoke(cli, list(args) + ["--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def refused(*args):
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    return result.stderr


def test_bandwidth_what_if_scales_an_ideal_memory_bound_step():
    # ideal decode at batch 1 is memory-bound in every operator: time = bytes / BW, so 3.35 -> 6 TB/s
    # (the H100 SXM datasheet figure and the what-if) divides the time by 6 / 3.35 exactly
    base = as_json(*DECODE, "--mode", "ideal")
    faster = as_json(*DECODE, "--mode", "ideal", "--set", "hardware.memory_bandwidth=6 TB/s")
    assert base["time_s"] / faster["time_s"] == pytest.approx(6 / 3.35, rel=1e-9)


def test_capacity_what_if_makes_a_70b_model_fit():
    # Llama-3.1-70B in bf16 needs 141 GB of weights: not on an 80 GB H100, on a 288 GB one
    args = ["decode", "-m", "llama-3.1-70b", "-c", "h100-sxm"]
    assert as_json(*args)["fits"] is False
    bigger = as_json(*args, "--set", "hardware.memory_capacity=288 GB")
    assert bigger["fits"] is True and bigger["capacity_bytes"] == 288e9


def test_calibrated_what_if_keeps_the_achieved_share_of_each_peak():
    h100 = load_hardware("h100-sxm")
    faster = load_hardware("h100-sxm", {"memory_bandwidth": "6 TB/s", "peak_flops.bf16": "2 PFLOP/s"})
    assert faster.calibration.bandwidth / 6e12 == pytest.approx(h100.calibration.bandwidth / 3.35e12)
    assert faster.calibration.flops["bf16"] / 2e15 == pytest.approx(h100.calibration.flops["bf16"] / 989.4e12)
    assert faster.calibration.layer_overhead == h100.calibration.layer_overhead  # software costs stay
    assert h100.mem_bandwidth == 3.35e12  # the cached chip is untouched


def test_compute_what_if_speeds_a_compute_bound_prefill():
    args = ["prefill", "-m", "llama-3.1-8b", "-c", "h100-sxm", "-p", "8192", "--mode", "ideal"]
    base, faster = as_json(*args), as_json(*args, "--set", "hardware.peak_flops.bf16=1978.8 TFLOP/s")
    # an 8k-token prefill of an 8B model is compute-bound: twice the FLOP rate, close to half the time
    assert base["compute_time_s"] / faster["compute_time_s"] == pytest.approx(2, rel=0.05)


@pytest.mark.parametrize("pair, message", [
    ("hardware.memory_bandwidth=6 TB", "is not a bandwidth"),
    ("hardware.memory_bandwidth=6", "has no unit"),
    ("hardware.memory_capacity=-1 GB", "must be greater than zero"),
    ("hardware.bandwidth=6 TB/s", "did you mean hardware.memory_bandwidth"),
    ("hardware.peak_flops.bf17=1 PFLOP/s", "unknown dtype 'bf17'"),
    ("chip.power=5 TB/s", "is not a power"),
])
def test_bad_hardware_sets_are_one_line(pair, message):
    assert message in refused(*DECODE, "--set", pair)


def test_split_overrides_sends_prefixed_fields_to_the_chip():
    assert split_overrides({"num_layers": "20", "model.hidden_size": "4096", "hardware.power": "1 kW",
                            "chip.price": "2 USD/hour"}) == (
        {"num_layers": "20", "hidden_size": "4096"}, {"power": "1 kW", "price": "2 USD/hour"})
    with pytest.raises(RooflineError, match="not a chip field"):
        with_overrides(load_hardware("h100-sxm"), {"num_layers": "20"})


def test_explain_and_sweep_take_hardware_sets():
    pair = "hardware.memory_bandwidth=6 TB/s"
    explained = as_json("explain", "decode", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--set", pair)
    decoded = as_json(*DECODE, "--set", pair)
    assert explained["time_s"] == pytest.approx(decoded["time_s"], rel=1e-9)
    swept = as_json("sweep", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--set", pair)
    assert swept["points"][0]["step_time_s"] == pytest.approx(decoded["time_s"], rel=1e-9)
