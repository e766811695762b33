"""What the wafer answers rest on and what they leave: the fit left out model by model, the headline's
sensitivity to each fitted constant, the KV-cache room and the filled pipeline (issue 14, item 8).

Reference values are hand arithmetic from the specs: GLM-4.7 caches 92 layers x 2 (K, V) x 8 KV heads
x 128 x 2 B = 376,832 B per token; 19 CS-3 hold 19 x 44 GB = 836 GB, of which the model takes
about 706 GB at batch 1 and context 1024, leaving about 130 GB.
"""
import json
import statistics

import pytest
from click.testing import CliRunner

from roofline import solve
from roofline.cli import cli
from roofline.measurements import read_measurements
from roofline.placement import decode_memory, fits
from roofline.models import load_model
from roofline.hardware import load_hardware
from roofline.parallel import Layout
from roofline.validate import leave_one_model_out

SRAM_FILE = "data/validation/published/sram_systems.csv"


def run(*args, expect=0):
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == expect, result.output
    return result


@pytest.fixture(scope="module")
def left_out():
    return leave_one_model_out(read_measurements(SRAM_FILE), "wse-3", ["date<2025"])


@pytest.fixture(scope="module")
def headline():
    return solve.solve_chips("glm-4.7", "wse-3", tokens_per_s_per_user=1000)


def test_leave_one_model_out_refits_without_each_model(left_out):
    results, whole = left_out
    models = [r.model for r in results]
    assert len(models) == 9 and "kimi-k2" in models and "llama-4-maverick" in models
    by_model = {r.model: r for r in results}
    # with a layer's cost its GEMVs' mesh crossings (roofline.wafer), Kimi K2 left out is predicted 18% too
    # fast (74% with a fixed cost per layer) and Maverick 45% too slow (56%); +-5 points
    assert by_model["kimi-k2"].left_out[0] == pytest.approx(0.18, abs=0.05)
    assert by_model["llama-4-maverick"].left_out[0] == pytest.approx(-0.45, abs=0.05)
    # measured over 13 rows: in sample median 14.0% (16.7% before), left out median 18.2% (20.1%) and
    # largest 45.1% (73.7%); every model but Maverick (a '>2500' floor) and gpt-oss-120b's 1844 row (its
    # three figures 1.63x apart) within 25% left out
    inside = [abs(e) for r in results for e in r.in_sample]
    outside = [abs(e) for r in results for e in r.left_out]
    assert statistics.median(inside) <= 0.15
    assert statistics.median(outside) <= 0.19 and max(outside) <= 0.50
    misses = {(r.model, round(e, 2)) for r in results for e in r.left_out if abs(e) > 0.25}
    assert {m for m, _ in misses} <= {"llama-4-maverick", "gpt-oss-120b"} and len(misses) == 2
    # a fit without a model explains it no better than the fit with it (least squares on its own rows)
    assert statistics.median(outside) >= statistics.median(inside)
    # the refits differ: the mesh crossing moved when the model with the largest residual was left out
    assert by_model["llama-4-maverick"].constants["mesh_traversal"] != pytest.approx(
        whole.ceiling.mesh_traversal, rel=0.05)
    assert by_model["llama-4-maverick"].constants["link_latency"] is None      # held at the link spec


def test_sensitivity_to_each_constant_has_the_physical_sign(left_out):
    results, _ = left_out
    glm = next(r for r in results if r.model == "glm-4.7")
    assert set(glm.sensitivity) == {"step_overhead", "mesh_traversal"}     # the hop is not fitted on a wafer
    for name in ("step_overhead", "mesh_traversal"):
        slower, faster = glm.sensitivity[name][1], glm.sensitivity[name][0]
        assert slower < 0 < faster          # a larger fixed cost lowers tokens/s
    # GLM-4.7 on 19 wafers: 62.9 mesh crossings (roofline.wafer.mesh_span) x 5.0 us = 315 us of an 840 us
    # token, so +20% is about -0.2 x 315 / (840 + 63) = -7.0%; the per-token cost (351 us) about -7.7%
    assert glm.sensitivity["mesh_traversal"][1] == pytest.approx(-0.070, abs=0.015)
    assert glm.sensitivity["step_overhead"][1] == pytest.approx(-0.077, abs=0.015)


def test_validate_prints_the_left_out_table():
    out = run("validate", "-i", SRAM_FILE, "-c", "wse-3", "--leave-one-model-out", "--quiet").output
    assert "leave one model out on wse-3 (rows held out of every fit: date<2025)" in out
    assert "kimi-k2" in out and "left out: median" in out
    data = json.loads(run("validate", "-i", SRAM_FILE, "-c", "wse-3", "--leave-one-model-out", "--format", "json",
                          "--quiet").output)
    assert len(data["leave_one_model_out"]["models"]) == 9


@pytest.mark.parametrize("args, message", [
    ([], "--leave-one-model-out needs --hardware"),
    (["-c", "wse-3", "--format", "csv"], "CSV cannot hold"),
])
def test_leave_one_model_out_bad_input(args, message):
    result = run("validate", "-i", SRAM_FILE, "--leave-one-model-out", *args, expect=2)
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_headline_reports_the_kv_cache_room(headline):
    room = headline.result["kv_room"]
    assert room["kv_bytes_per_token"] == 92 * 2 * 8 * 128 * 2
    assert room["free_bytes"] == pytest.approx(130e9, rel=0.03)
    model, chip = load_model("glm-4.7"), load_hardware("wse-3")
    one = Layout(1, 19, 1, 1)
    longest = room["longest_context_batch1"]
    # the fullest wafer binds: the longest context fits and one more token does not
    assert fits(decode_memory(model, one, 1, longest), chip)
    assert not fits(decode_memory(model, one, 1, longest + 1), chip)
    assert room["largest_batch"] > 19           # at context 1024 the wafers hold more than a filled pipeline
    assert any("KV-cache room" in w for w in headline.why)


def test_solve_chips_counts_the_context_asked(headline):
    # at 131k tokens attention reads 92 x 96 heads x 128 x 4 FLOP x 131k = 593 GFLOP a token: at the fitted
    # 0.89 PFLOP/s (a GEMV or an attention runs on the cores holding its weights or cache) 0.66 ms, so
    # 1000 tokens/s per user is out of reach and 500 is asked
    assert not solve.solve_chips("glm-4.7", "wse-3", tokens_per_s_per_user=1000, context=131072).feasible
    long = solve.solve_chips("glm-4.7", "wse-3", tokens_per_s_per_user=500, context=131072)
    assert long.answer == 19 and long.result["context"] == 131072
    # 130k tokens x 376.8 kB = 49 GB more: the room and the margin shrink by about that much
    assert headline.result["kv_room"]["free_bytes"] - long.result["kv_room"]["free_bytes"] == \
        pytest.approx((131072 - 1024) * 376832, rel=0.05)
    assert long.margins["capacity"] < headline.margins["capacity"]
    assert long.result["kv_room"]["largest_batch"] < headline.result["kv_room"]["largest_batch"]


def test_filled_pipeline_next_to_batch_one(headline):
    filled = headline.result["pipeline_filled"]
    assert filled["batch"] == 19 and filled["microbatches"] == 19 and filled["fits"]
    # one micro-batch per stage: each wafer works on one sequence, about 19x batch 1's aggregate
    ratio = filled["tokens_per_s"] / headline.result["tokens_per_s"]
    assert 15 <= ratio <= 19.5
    # energy: 19 CS-3 at 23 kW over the aggregate
    assert filled["joules_per_token"] == pytest.approx(19 * 23e3 / filled["tokens_per_s"], rel=1e-6)
    assert filled["joules_per_token_at_batch"] == pytest.approx(19 * 23e3 / headline.result["tokens_per_s"],
                                                                rel=1e-6)
    assert any("pipeline filled" in w for w in headline.why)


def test_single_chip_answer_has_no_pipeline_to_fill():
    answer = solve.solve_chips("llama-3.1-8b", "wse-3", tokens_per_s_per_user=100)
    assert answer.result["pp"] == 1 and answer.result["pipeline_filled"] is None


def test_wafers_carry_the_dense_peak_and_the_fit_holds_bandwidth():
    """The WSE-3's 125 PFLOP/s is sparse; the spec carries the dense estimate, 900,000 cores x 8 FP16 lanes
    x 2 x 1.1 GHz = 15.84 PFLOP/s (WSE-2: 850,000 x 4 x 2 x 1.1 GHz = 7.48). At it batch-1 decode on a
    wafer is compute-sensitive and no row's time depends on the bandwidth: the fit holds it at its
    ceiling (it used to crash on the missing value) and fits FLOP/s instead, below the peak."""
    assert load_hardware("wse-3").peak_flops["fp16"] == pytest.approx(900_000 * 8 * 2 * 1.1e9)
    assert load_hardware("wse-2").peak_flops["fp16"] == pytest.approx(850_000 * 4 * 2 * 1.1e9)
    from roofline.calibrate import calibrate, prepare
    from roofline.measurements import row_filter

    chip = load_hardware("wse-3")
    steps, kernels, held, _ = prepare(read_measurements(SRAM_FILE), chip, [row_filter("date<2025")])
    fit = calibrate(steps, kernels, chip, held)
    assert "bandwidth" in fit.held and fit.ceiling.bandwidth == pytest.approx(21e15)
    assert fit.ceiling.flops["fp16"] <= 15.84e15


def test_leave_one_model_out_on_a_chip_without_hops():
    """A100 rows have no pipeline: the refit has no per-hop cost, shown as '-' (it used to crash)."""
    out = run("validate", "-i", "data/validation/published/a100_gpt-fast_lmdeploy.csv", "-c", "a100-sxm",
              "--leave-one-model-out", "--quiet").output
    assert "leave one model out on a100-sxm" in out
    assert " / -" in out
