"""The shipped deployments library (hardware_specs/deployments): the disaggregated InferenceX runs of the
other NVIDIA generations, read for a serving CSV of any name, after the CSV's own FILE.deployments.yaml.

The rows here are shapes in the held-out file's format with placeholder measurements (500 ms, 20 ms):
these tests check which deployment a row gets, never an accuracy.
"""
import csv
import re
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from roofline.cli import cli
from roofline.serving import benchmarks, deployments
from roofline.serving.rows import read_rows

H100 = Path(__file__).resolve().parents[1] / "data" / "validation" / "serving" / "h100_sxm_serving.csv"
COLUMNS = next(csv.reader(open(H100, newline="", encoding="utf-8")))


def _row(**cells):
    """A disaggregated DeepSeek-R1 row of GB200 fp8 TensorRT-LLM at 8192/1024 and 615 clients (InferenceX
    dsr1-fp8-gb200-dynamo-trt: 3 prefill workers of DEP8, 1 decode worker of DEP16), as an InferenceX dump
    without worker counts writes it, with `cells` changed."""
    row = dict.fromkeys(COLUMNS, "")
    row.update(id="gb200_dsr1_fp8_8k1k_c615", backend="trtllm", model_path="deepseek-ai/DeepSeek-R1", system="gb200",
               precision="fp8", mode="disagg", isl="8192", osl="1024", gemm_quant_mode="fp8", moe_quant_mode="fp8",
               prefill_tp_size="1", prefill_attention_dp_size="8", prefill_moe_ep_size="8", decode_tp_size="1",
               decode_attention_dp_size="16", decode_moe_ep_size="16", silicon_ttft_ms="500", silicon_tpot_ms="20",
               silicon_data_source="source_file=2026-04-06.csv; silicon_concurrency=615")
    row.update(cells)
    return row


def _write(path, *rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def library():
    return deployments.read_library()


def test_a_csv_of_another_name_gets_the_librarys_deployment(tmp_path):
    (prediction,), skipped = benchmarks.validate_file(_write(tmp_path / "heldout_gb200.csv", _row()))
    assert skipped == []
    assert prediction.deployment == "trtllm/gb200-fp8/8k1k/stp/ctx3_gen1_dep16_batch32_eplb0_mtp0_615"
    assert prediction.candidates == 1
    # 3 prefill workers of 8 data-parallel attention groups, 1 decode worker of 16 (the row's widths)
    assert prediction.layout.startswith("3P x (TP=1, EP=8 ") and "1D x (TP=1, EP=16 " in prediction.layout


def test_without_the_library_the_row_falls_back_to_one_worker_each(tmp_path, monkeypatch):
    monkeypatch.setattr(deployments, "library_dir", lambda: tmp_path / "none")
    (prediction,), _ = benchmarks.validate_file(_write(tmp_path / "heldout_gb200.csv", _row()))
    assert prediction.deployment == "" and prediction.layout.startswith("1P x ")


@pytest.mark.parametrize("cells", [{"system": "gb300"}, {"precision": "fp4"}, {"isl": "1024"},
                                   {"model_path": "openai/gpt-oss-120b"}, {"backend": "sglang"},
                                   {"silicon_data_source": "source_file=2026-04-06.csv; silicon_concurrency=616"},
                                   # the row states 2 decode workers: the recipe's single decode worker is not it
                                   {"prefill_num_workers": "3", "decode_num_workers": "2"}])
def test_an_entry_applies_only_to_its_system_precision_model_engine_lengths_load_and_workers(library, cells):
    model_id = benchmarks.find_model(cells.get("model_path", "deepseek-ai/DeepSeek-R1"))
    recipes = [d["recipe"] for d in deployments.deployments_for(_row(**cells), library, model_id)]
    assert "trtllm/gb200-fp8/8k1k/stp/ctx3_gen1_dep16_batch32_eplb0_mtp0_615" not in recipes


def test_runs_the_csv_cannot_tell_apart_get_the_geometric_mean_of_their_predictions(tmp_path, library):
    # GB200 fp4, 1024/1024 at 4301 clients: three runs (MTP and STP on 2P + DEP16, STP on 1P + DEP8); a row
    # stating 2 prefill workers and data-parallel decode attention leaves the two on 2P + DEP16
    row = _row(id="gb200_fp4_c4301", precision="fp4", gemm_quant_mode="nvfp4", moe_quant_mode="nvfp4", isl="1024",
               prefill_num_workers="2", decode_num_workers="1", prefill_attention_dp_size="4",
               prefill_moe_ep_size="4", silicon_data_source="db-dump/2026-04-27; silicon_concurrency=4301")
    found = deployments.deployments_for(row, library, "deepseek-v3")
    assert sorted(d["draft_tokens"] for d in found) == [0, 1]
    (prediction,), _ = benchmarks.validate_file(_write(tmp_path / "rows.csv", row))
    singles = [benchmarks.predict_row(row, deployment=d, candidates=2) for d in found]
    assert prediction.deployment.startswith("geometric mean of ") and prediction.candidates == 2
    # the mean lies strictly between the two runs' predictions (MTP decodes faster than STP)
    low, high = sorted(s.tpot_s for s in singles)
    assert low < prediction.tpot_s < high


def test_the_csvs_own_deployments_file_comes_first(tmp_path):
    path = _write(tmp_path / "rows.csv", _row())
    (tmp_path / "rows.deployments.yaml").write_text(
        "deployments:\n  - {engine: trtllm, isl: 8192, osl: 1024, concurrency: 615, draft_tokens: 0, "
        "prefill_workers: 2, decode_workers: 1, prefill_attention: dp, decode_attention: dp, decode_max_batch: 64, "
        "recipe: local-run}\n", encoding="utf-8")
    (prediction,), _ = benchmarks.validate_file(path)
    assert prediction.deployment == "local-run" and prediction.layout.startswith("2P x ")


@pytest.mark.parametrize("entry, field", [
    # a library entry applies to any CSV: it must name its system, precision, model and configuration
    ("{engine: trtllm, isl: 1024, osl: 1024, concurrency: 6, draft_tokens: 0, prefill_workers: 1, decode_workers: 1, "
     "prefill_attention: dp, decode_attention: tp, recipe: r, precision: fp8, model: deepseek-v3, config: c}", "system"),
    ("{engine: trtllm, isl: 1024, osl: 1024, concurrency: 6, draft_tokens: 0, prefill_workers: 1, decode_workers: 1, "
     "prefill_attention: dp, decode_attention: tp, recipe: r, system: gb200, precision: fp8, config: c}", "model"),
    ("{engine: trtllm, isl: 1024, osl: 1024, concurrency: 6, draft_tokens: 0, prefill_workers: 1, decode_workers: 1, "
     "prefill_attention: dp, decode_attention: tp, decode_experts: dp, recipe: r, system: gb200, precision: fp8, "
     "model: deepseek-v3, config: c}", "decode_experts"),
    ("{engine: sglang, isl: 1024, osl: 1024, concurrency: 6, draft_tokens: 0, prefill_workers: 1, decode_workers: 1, "
     "prefill_attention: dp, decode_attention: dp, decode_moe_exchange: deepep, recipe: r, system: gb200, "
     "precision: fp8, model: deepseek-v3, config: c}", "decode_moe_exchange"),
    ("{engine: sglang, isl: 1024, osl: 1024, concurrency: 6, draft_tokens: 0, prefill_workers: 1, decode_workers: 1, "
     "prefill_attention: dp, decode_attention: dp, prefill_max_tokens: 0, recipe: r, system: gb200, "
     "precision: fp8, model: deepseek-v3, config: c}", "prefill_max_tokens"),
])
def test_a_bad_library_entry_is_one_line_and_exit_2(tmp_path, monkeypatch, entry, field):
    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "bad.yaml").write_text(f"deployments:\n  - {entry}\n", encoding="utf-8")
    monkeypatch.setattr(deployments, "library_dir", lambda: tmp_path / "library")
    result = CliRunner().invoke(cli, ["validate", "--measurements", str(_write(tmp_path / "rows.csv", _row()))])
    assert result.exit_code == 2
    message = result.output.strip().splitlines()
    assert len(message) == 1 and f"bad.yaml, deployment 1, {field}" in message[0] and "Traceback" not in result.output


def test_the_library_covers_the_other_generations_and_no_h100(library):
    systems = Counter(d["system"] for d in library)
    assert set(systems) == {"h200_sxm", "b200_sxm", "b300_sxm", "gb200", "gb300"}
    # the H100 runs live in h100_sxm_serving.deployments.yaml only (the sidecar's figures stay as they are)
    assert all(d["config"].split("-")[2] != "h100" for d in library)
    assert all(d["recipe"] and d["config"] for d in library)


def test_tensorrt_llm_entries_agree_with_their_recipe_names(library):
    # ctxP_genD_{tep,tp,dep,dp}W_batchB_eplbS_mtpK: the workers, attention, batch limit and MTP the entry gives
    name = re.compile(r"ctx(\d+)_gen(\d+)_(tep|tp|dep|dp)\d+_batch(\d+)_eplb\d+_mtp(\d+)")
    checked = 0
    for d in library:
        found = name.search(d["recipe"])
        if d["engine"] != "trtllm" or not found:
            continue
        ctx, gen, kind, batch, mtp = found.groups()
        assert (d["prefill_workers"], d["decode_workers"], d["decode_max_batch"], d["draft_tokens"]) == \
            (int(ctx), int(gen), int(batch), int(mtp)), d["recipe"]
        assert d["decode_attention"] == ("dp" if kind in ("dep", "dp") else "tp"), d["recipe"]
        assert (d.get("decode_experts") == "tp") == (kind == "tp"), d["recipe"]
        assert f"/{d['isl'] // 1024}k{d['osl'] // 1024}k/" in d["recipe"], d["recipe"]
        assert ("/mtp/" in d["recipe"]) == (d["draft_tokens"] > 0), d["recipe"]
        checked += 1
    assert checked > 300


def test_no_entry_is_listed_twice(library):
    keys = Counter(tuple(sorted(d.items())) for d in library)
    assert [k for k, n in keys.items() if n > 1] == []


def test_the_h100_disaggregated_rows_are_predicted_as_without_the_library(tmp_path, monkeypatch):
    rows = [r for r in read_rows(H100) if r["mode"] == "disagg"]
    with_library, _ = benchmarks.validate_file(H100, rows=rows)
    monkeypatch.setattr(deployments, "library_dir", lambda: tmp_path / "none")
    without, _ = benchmarks.validate_file(H100, rows=rows)
    assert [(p.id, p.ttft_s, p.tpot_s, p.deployment) for p in with_library] == \
        [(p.id, p.ttft_s, p.tpot_s, p.deployment) for p in without]
