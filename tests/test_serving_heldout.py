"""Coverage of serving rows on NVIDIA chips other than H100 (the held-out generations of the serving issue).

tests/fixtures/heldout_serving_shapes.csv has 68 rows in the serving CSV format whose shapes are those the
benchmarks run on H200, B200, B300, GB200 and GB300 (system names, engines, precisions, layouts as the
InferenceX dumps and aiconfigurator's silicon_sample.csv write them: NVFP4/MXFP4/fp8 block-scaled
precisions, NVIDIA's FP4 re-releases of DeepSeek-R1, Llama-3.3-70B and Qwen3, data-parallel attention with
wide expert parallelism up to 72 GPUs, disaggregated rows with and without worker counts). Their measured
columns are placeholders (500 ms, 20 ms): these tests check that every row maps and is predicted, never an
accuracy.
"""
import csv
import math
from pathlib import Path

import pytest

from roofline.serving import benchmarks, deployments, rows
from roofline.parallel import Layout

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "heldout_serving_shapes.csv"


@pytest.fixture(scope="module")
def predicted():
    return {mode: benchmarks.validate_file(FIXTURE, mode=mode) for mode in ("ideal", "calibrated")}


def test_every_row_of_the_other_generations_is_predicted(predicted):
    predictions, skipped = predicted["calibrated"]
    assert skipped == []
    assert len(predictions) == len(rows.read_rows(FIXTURE)) == 68
    assert {p.system for p in predictions} >= {"h200_sxm", "b200_sxm", "b300_sxm", "gb200", "gb300"}
    for p in predictions:
        assert math.isfinite(p.ttft_s) and p.ttft_s > 0, p.id
        assert math.isfinite(p.tpot_s) and p.tpot_s > 0, p.id


def test_ideal_is_never_slower_than_calibrated(predicted):
    # the calibrated ceilings are fractions of the datasheet peaks, so no request may take longer ideal
    # (1e-9: rounding of the fixed-point iteration). TTFT alone may: with a saturated prefill pool (GB300's
    # 3226 clients on one 2-GPU prefill worker) a closed loop's cycle is set by the prefill's rate, and a
    # faster decode moves the clients' wait into the prefill queue; the request's whole latency still falls.
    ideal = {p.id: p for p in predicted["ideal"][0]}
    for p in predicted["calibrated"][0]:
        e2e = lambda q: q.ttft_s + (q.osl - 1) * q.tpot_s
        assert e2e(ideal[p.id]) <= e2e(p) * (1 + 1e-9), p.id
        assert ideal[p.id].tpot_s <= p.tpot_s * (1 + 1e-9), p.id


@pytest.mark.parametrize("system, chip", [("h200_sxm", "h200"), ("b200_sxm", "b200"), ("b300_sxm", "b300"),
                                          ("gb200", "gb200"), ("gb300", "gb300"), ("gb300_nvl72", "gb300"),
                                          ("h100_sxm", "h100-sxm")])
def test_system_names_resolve(system, chip):
    assert benchmarks.find_chip(system) == chip


def test_unknown_system_is_skipped_with_the_reason():
    row = dict(rows.read_rows(FIXTURE)[0], system="h20")
    assert benchmarks.predict_row(row) == "no chip spec for system 'h20'"


@pytest.mark.parametrize("mode, dtype", [("bfloat16", "bf16"), ("fp8_static", "fp8"), ("fp8_ootb", "fp8"),
                                         ("sq", "int8"), ("int8_wo", "int8"), ("w4afp8", "int4-g128"),
                                         ("w4a16_mxfp4", "mxfp4"), ("w4a8_mxfp4_mxfp8", "mxfp4"),
                                         ("nvfp4_wo", "nvfp4"), ("w4a16_nvfp4", "nvfp4")])
def test_aiconfigurator_quant_modes_map(mode, dtype):
    assert benchmarks.QUANT_DTYPES[mode] == dtype


def _row(prefix, **changes):
    """The fixture's row whose id starts with `prefix`, with `changes`."""
    return dict(next(r for r in rows.read_rows(FIXTURE) if r["id"].startswith(prefix)), **changes)


@pytest.mark.parametrize("model_path", ["deepseek-ai/DeepSeek-R1", "nvidia/DeepSeek-R1-0528-FP4-v2",
                                        "nvidia/DeepSeek-R1-0528-FP4"])
def test_deepseek_fp4_checkpoints_keep_bf16_attention(model_path):
    # NVIDIA's DeepSeek-R1 FP4 releases quantize the MLPs, not the MLA projections (-v2 adds only wo)
    row = _row(prefix="synthetic_12_", model_path=model_path)
    model = benchmarks._model_for(row, {})
    assert (model.id, model.dtypes["weights"], model.dtypes["experts"]) == ("deepseek-v3", "bf16", "nvfp4")


def test_fp8_deepseek_and_fp4_llama_rows_are_quantized_throughout():
    assert benchmarks._model_for(_row(prefix="synthetic_04_"), {}).dtypes["weights"] == "fp8"
    llama = benchmarks._model_for(_row(prefix="synthetic_29_"), {})
    assert (llama.id, llama.dtypes["weights"]) == ("llama-3.1-70b", "nvfp4")


def test_gpt_oss_mxfp4_modes_keep_the_checkpoint():
    model = benchmarks._model_for(_row(prefix="synthetic_44_"), {})
    assert (model.dtypes["weights"], model.dtypes["experts"]) == ("bf16", "mxfp4")


@pytest.mark.parametrize("prefix, gpus", [("synthetic_52_", 48), ("synthetic_53_", 24)])
def test_wide_sglang_decode_pool_runs_data_parallel_attention(prefix, gpus):
    # the dump gives a 48-GPU SGLang decode worker as tp 48 (moe_tp 6 x moe_ep 8): 48 does not divide
    # DeepSeek's 128 heads, so attention was data-parallel, the experts over all 48 GPUs
    row = _row(prefix=prefix)
    model = benchmarks._model_for(row, {})
    assert benchmarks.layout_of(row, "decode_", model) == Layout(1, 1, gpus, 1)
    assert benchmarks.layout_of(row, "prefill_", model) == Layout(8, 1, 8, 1)


def test_a_dividing_tp_pool_stays_tensor_parallel():
    row = _row(prefix="synthetic_54_")   # tp 32 divides the 128 heads: the row's layout stands
    assert benchmarks.layout_of(row, "decode_", benchmarks._model_for(row, {})) == Layout(32, 1, 32, 1)


@pytest.mark.parametrize("hf_id", ["deepseek-ai/DeepSeek-V3.1", "deepseek-ai/DeepSeek-V3.1-Terminus",
                                   "nvidia/DeepSeek-V3.1-NVFP4", "nvidia/DeepSeek-R1-0528-NVFP4-v2"])
def test_deepseek_releases_find_the_v3_architecture(hf_id):
    assert benchmarks.find_model(hf_id) == "deepseek-v3"


def test_deepseek_row_without_a_precision_keeps_the_spec_dtypes():
    model = benchmarks._model_for(_row("synthetic_04_", gemm_quant_mode="", moe_quant_mode=""), {})
    assert (model.dtypes["weights"], model.dtypes["experts"]) == ("fp8", "fp8")


@pytest.mark.parametrize("prefix, column, value, reason", [
    ("synthetic_58_", "decode_tp_size", "x", "column decode_tp_size: expected a number, got 'x'"),
    ("synthetic_00_", "batch_size", "nan", "column batch_size: expected a number, got 'nan'"),
    ("synthetic_00_", "isl", "", "ISL, OSL, TTFT or TPOT is not a number")])
def test_a_malformed_cell_skips_the_row_with_the_reason(prefix, column, value, reason):
    # the aggregated row loses silicon_concurrency, so its batch_size is read as the concurrency
    row = _row(prefix, **{column: value})
    if prefix == "synthetic_00_":
        row["silicon_data_source"] = "db-dump/2026-04-27"
    predictions, skipped = benchmarks.validate_file(None, rows=[row])
    assert predictions == [] and skipped == [(row["id"], reason)]


def test_deployment_entries_of_several_chips_and_pool_widths(tmp_path):
    # a GB200 run of 4-GPU prefill and 32-GPU decode workers (decode tp 32 = moe_tp 8 x moe_ep 4 in the dump);
    # the GB300 entry at the same engine, lengths and concurrency must not match it
    row = _row("synthetic_48_")
    path = tmp_path / "rows.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, list(row))
        writer.writeheader()
        writer.writerow(row)
    entry = ("{engine: trtllm, isl: 1024, osl: 8192, concurrency: 512, draft_tokens: 0, prefill_workers: %d, "
             "decode_workers: 1, prefill_attention: dp, decode_attention: dp, decode_max_batch: 16, "
             "recipe: %s, system: %s, precision: fp4}")
    (tmp_path / "rows.deployments.yaml").write_text(
        "deployments:\n  - " + entry % (1, "gb300-run", "gb300") + "\n  - " + entry % (2, "gb200-run", "gb200") + "\n")
    assert [d["recipe"] for d in deployments.deployments_for(row, deployments.read_deployments(path))] == ["gb200-run"]
    (prediction,), skipped = benchmarks.validate_file(path)
    assert skipped == [] and prediction.deployment == "gb200-run"
    assert prediction.layout.startswith("2P x (TP=1, EP=4 ") and "1D x (TP=1, EP=32 " in prediction.layout
