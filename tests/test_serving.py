"""Serving: the mixed step, the mean-value model under load, its CLI, and the H100 serving rows."""
import json
import math
import statistics
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st

from roofline import serving
from roofline.serving import rows as serving_rows
from roofline.cli import cli
from roofline.deployment import evaluate
from roofline.hardware import load_hardware
from roofline.models import load_model
from roofline.operators import MixedShape
from roofline.parallel import Layout
from roofline.serving.benchmarks import validate_file
from roofline.step import ceilings

ROWS = Path(__file__).resolve().parent.parent / "data" / "validation" / "serving" / "h100_sxm_serving.csv"


def run(*args):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture(scope="module")
def h100():
    chip = load_hardware("h100-sxm")
    return chip, ceilings(chip, "calibrated")


def test_a_mixed_step_without_chunks_is_the_decode_step_and_without_decodes_the_prefill(h100):
    chip, ceiling = h100
    model = load_model("llama-3.1-8b")
    for layout in (Layout(1), Layout(4)):
        decode = evaluate("decode", model, chip, 32, 2048, layout, ceiling).token_time
        prefill = evaluate("prefill", model, chip, 1, 2048, layout, ceiling).token_time
        assert evaluate("mixed", model, chip, 32, MixedShape(2048, 0), layout, ceiling).token_time == \
            pytest.approx(decode, rel=1e-9)
        # one prompt as one chunk: the same operators, up to the logit row of the decode path (< 0.1%)
        assert evaluate("mixed", model, chip, 0, MixedShape(0, 2048), layout, ceiling).token_time == \
            pytest.approx(prefill, rel=1e-3)


def test_a_chunk_riding_in_a_decode_step_costs_less_than_its_prefill_alone(h100):
    # the weights are read once for decodes and chunk together (the point of chunked prefill):
    # decode 32 at 2k on one H100 is memory-bound, so the mixed step is below decode + prefill
    chip, ceiling = h100
    model = load_model("llama-3.1-8b")
    decode = evaluate("mixed", model, chip, 32, MixedShape(2048, 0), Layout(1), ceiling).token_time
    alone = evaluate("mixed", model, chip, 0, MixedShape(0, 512), Layout(1), ceiling).token_time
    both = evaluate("mixed", model, chip, 32, MixedShape(2048, 512), Layout(1), ceiling).token_time
    assert max(decode, alone) < both < decode + alone


def test_h100_rows_tpot_within_target_for_vllm_and_trtllm():
    # target of issue 11: TPOT within 8% median on aggregated H100 rows; measured 6.0% for these
    # two engines with the fixed costs fitted on concurrency <= 64 (3 points of slack for changes
    # to the shared calibration)
    predictions, skipped = validate_file(str(ROWS))
    agg = [p for p in predictions if p.mode == "agg" and p.engine in ("vllm", "trtllm")]
    assert len(agg) > 550
    assert statistics.median(abs(p.tpot_error) for p in agg) < 0.10
    # TTFT (target 20% median): 21.7% measured on all 810 aggregated rows (MiniMax-M2.5 included since
    # its spec exists); 1.3 points of slack for changes to the shared calibration
    every_agg = [p for p in predictions if p.mode == "agg"]
    assert len(every_agg) == 810
    assert statistics.median(abs(p.ttft_error) for p in every_agg) < 0.23
    assert statistics.median(abs(p.tpot_error) for p in every_agg) < 0.08
    # every row is predicted or skipped with its reason, none lost
    assert len(predictions) + len(skipped) == 917
    assert all(reason for _, reason in skipped)
    # the 7 dynamo disaggregated rows record no client concurrency (their decode_batch_size is the
    # decode workers' configured batch): skipped, never predicted at a made-up load
    unknown_load = [i for i, reason in skipped if "without the client concurrency" in reason]
    assert len(unknown_load) == 7 and all("disagg" in i for i in unknown_load)


@settings(max_examples=60, deadline=None)
@given(st.floats(1e-4, 0.1), st.floats(0.0, 1.0), st.integers(0, 8), st.floats(0.0, 2.0))
def test_an_arrival_waits_at_least_half_the_mean_step_and_at_most_half_the_longest(t_dec, delta, chunks, arrivals):
    # mean residual life E[T^2] / (2 E[T]) of two step lengths lies between half their mean and
    # half the longer one, and is t_dec / 2 when no step carries a prompt
    from roofline.serving.model import residual_step
    wait = residual_step(t_dec, delta, chunks, arrivals)
    if not chunks or not arrivals or not delta:
        assert wait == pytest.approx(t_dec / 2)
        return
    share = min(1.0, arrivals * chunks)
    long = t_dec + delta / chunks
    mean = (1 - share) * t_dec + share * long
    assert mean / 2 * (1 - 1e-12) <= wait <= long / 2 * (1 + 1e-12)


def test_closed_loop_tpot_and_throughput_grow_with_concurrency_until_the_cache_is_full():
    results = [serving.serve("llama-3.1-8b", "h100-sxm", 1024, 256, concurrency=c) for c in (1, 8, 64, 256)]
    tpots = [r.tpot_s for r in results]
    rates = [r.request_rate for r in results]
    assert tpots == sorted(tpots) and rates == sorted(rates)


@settings(max_examples=8, deadline=None)
@given(st.integers(1, 300), st.integers(64, 4096), st.integers(2, 1024))
def test_ttft_is_at_least_one_prefill_and_e2e_adds_the_decodes(c, isl, osl):
    r = serving.serve("llama-3.1-8b", "h100-sxm", isl, osl, concurrency=c)
    assert r.ttft_s > 0 and r.tpot_s > 0
    assert r.e2e_s == pytest.approx(r.ttft_s + (osl - 1) * r.tpot_s, rel=1e-9)
    assert 0 <= r.kv_cache_use <= 1


def test_more_clients_than_the_cache_holds_wait_in_the_queue():
    # Qwen3-32B in bf16 on one H100 leaves about 6 GB of cache: a few dozen 4k-token sequences
    r = serving.serve("qwen3-32b", "h100-sxm", 4096, 1024, concurrency=256)
    assert r.max_running < 256 and r.queue_s > 0 and r.kv_cache_use > 0.9


def test_an_open_loop_rate_beyond_capacity_saturates():
    r = serving.serve("llama-3.1-8b", "h100-sxm", 1024, 256, request_rate=1000)
    assert r.saturated and math.isinf(r.ttft_s) and r.request_rate < 1000


def test_disaggregated_serving_pays_the_kv_transfer():
    r = serving.serve("llama-3.1-8b", "h100-sxm", 4096, 256, concurrency=16, prefill={"tp": 1, "workers": 2},
                      decode={"tp": 2, "workers": 1})
    assert r.mode == "disagg" and r.chips == 4
    assert r.extra["kv_transfer_s"] > 0 and r.ttft_s > r.extra["prefill_s"] + r.extra["kv_transfer_s"]


def test_prefix_cache_hits_shorten_ttft():
    cold = serving.serve("llama-3.1-8b", "h100-sxm", 8192, 256, concurrency=8)
    warm = serving.serve("llama-3.1-8b", "h100-sxm", 8192, 256, concurrency=8, prefix_hit=0.75)
    assert warm.ttft_s < cold.ttft_s


def test_no_point_of_the_frontier_is_dominated():
    points, front = serving.frontier("llama-3.1-8b", "h100-sxm", 1024, 256, concurrencies=(1, 4, 16, 64, 256),
                                     chips=2, search=True)
    assert len(points) == 5 * 3 and front
    for f in front:
        assert not any(p.interactivity > f.interactivity and p.output_tokens_per_s / p.chips >
                       f.output_tokens_per_s / f.chips for p in points)


def test_serve_prints_the_benchmark_figures_as_json():
    out = run("serve", "-m", "llama-3.1-70b", "-c", "h100-sxm", "--tp", "8", "--weights-dtype", "fp8",
              "--isl", "1024", "--osl", "1024", "--concurrency", "64", "--format", "json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    # measured on H100 with vLLM (InferenceX, this configuration): TTFT 185 ms, TPOT 15.45 ms
    assert data["tpot_s"] == pytest.approx(0.01545, rel=0.15)
    assert data["tpot_s"] * data["interactivity_tok_s_per_user"] == pytest.approx(1)
    for key in ("ttft_s", "e2e_s", "output_tokens_per_s_per_chip", "usd_per_mtok", "joules_per_token",
                "kv_cache_use", "requests_per_s"):
        assert data[key] is not None and data[key] > 0


@pytest.mark.parametrize("args, message", [
    (["--isl", "1024", "--osl", "1", "--concurrency", "4"], "OSL must be at least 2"),
    (["--isl", "200000", "--osl", "100", "--concurrency", "4"], "context window"),
    (["--isl", "1024", "--osl", "100", "--concurrency", "0"], "concurrency must be a positive"),
    (["--isl", "1024", "--osl", "100", "--request-rate", "-1"], "request rate must be a positive"),
    (["--isl", "1024", "--osl", "100"], "exactly one of concurrency"),
    (["--isl", "2048:1024", "--osl", "100", "--concurrency", "4"], "low end above"),
])
def test_bad_serving_input_is_one_line_and_exit_2(args, message):
    out = run("serve", "-m", "llama-3.1-8b", "-c", "h100-sxm", *args)
    assert out.exit_code == 2 and message in out.output and "Traceback" not in out.output


def test_limits_no_layout_meets_exit_1_with_the_reason():
    out = run("solve", "serving", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--isl", "1024", "--osl", "256",
              "--request-rate", "5", "--ttft-max", "0.001", "--tpot-max", "0.001", "--max-chips", "4")
    assert out.exit_code == 1 and "why: no deployment of at most 4 h100-sxm chips" in out.output


def test_solve_serving_names_the_binding_limit():
    out = run("solve", "serving", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--isl", "1024", "--osl", "256",
              "--request-rate", "20", "--ttft-max", "0.5", "--tpot-max", "0.02", "--max-chips", "8", "--format", "json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["feasible"] and data["binding"] in ("ttft", "tpot") and min(data["margins"].values()) >= 0


def test_a_serving_csv_with_missing_columns_is_refused(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("id,backend,model_path,system,silicon_ttft_ms\nx,vllm,Qwen/Qwen3-32B,h100_sxm,100\n")
    out = run("validate", "--measurements", str(path))
    assert out.exit_code == 2 and "needs the columns" in out.output and "silicon_tpot_ms" in out.output


def test_rows_of_unknown_systems_and_models_are_skipped_with_the_reason(tmp_path):
    header = ROWS.read_text().splitlines()[0]
    good = next(line for line in ROWS.read_text().splitlines() if ",Qwen/Qwen3-32B,h100_sxm," in line
                and ",agg," in line)
    cells = header.split(",")
    row = dict(zip(cells, good.split(",")))
    bad_system = ",".join({**row, "id": "bad_system", "system": "abacus_9000"}[c] for c in cells)
    bad_model = ",".join({**row, "id": "bad_model", "model_path": "nobody/NoModel-1B"}[c] for c in cells)
    path = tmp_path / "rows.csv"
    path.write_text("\n".join([header, good, bad_system, bad_model]) + "\n")
    out = run("validate", "--measurements", str(path), "--format", "json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert [r["id"] for r in data["rows"]] == [row["id"]]
    for key in ("ttft_s", "tpot_s", "measured_ttft_s", "measured_tpot_s", "system", "model"):
        assert key in data["rows"][0]
    reasons = {s["id"]: s["reason"] for s in data["skipped"]}
    assert "abacus_9000" in reasons["bad_system"] and "nobody/NoModel-1B" in reasons["bad_model"]
    assert data["summary"]["rows"] == 1
    # the file's own noise floor: the good row twice would be one configuration listed twice
    assert data["noise_floor"]["agg"]["rows"] == 3 and data["noise_floor"]["agg"]["repeated"] == 0
    path.write_text("\n".join([header, good, good.replace(row["id"], "copy", 1)]) + "\n")
    twice = json.loads(run("validate", "--measurements", str(path), "--format", "json").output)["noise_floor"]["agg"]
    assert twice["repeated"] == 1 and twice["differing"] == 0 and twice["tpot_floor_mean"] == 0


def test_ideal_mode_is_a_lower_bound_on_every_serving_time():
    # ideal mode: datasheet peaks and no fixed costs, the engine's included
    for kwargs in ({"concurrency": 4}, {"concurrency": 128}, {"request_rate": 5}):
        ideal = serving.serve("llama-3.1-8b", "h100-sxm", 2048, 256, mode="ideal", **kwargs)
        calibrated = serving.serve("llama-3.1-8b", "h100-sxm", 2048, 256, **kwargs)
        assert ideal.ttft_s < calibrated.ttft_s and ideal.tpot_s < calibrated.tpot_s
        assert "ideal mode" in ideal.engine_costs


def test_validate_of_a_serving_csv_refuses_a_chip_option():
    out = run("validate", "--measurements", str(ROWS), "--hardware", "h200")
    assert out.exit_code == 2 and "names each row's system" in out.output


def test_a_chunk_of_several_prompts_attends_within_each_prompt_only(h100):
    # n prompts of P tokens: n S(P) causal pairs, not S(n P); a step of 8 prompts of 1024 tokens
    # therefore costs less than one 8192-token prompt (attention 8x smaller) and more than one
    # 1024-token prompt (8x the GEMM FLOPs)
    from roofline.operators import causal_pairs, mixed_operators
    chip, ceiling = h100
    model = load_model("llama-3.1-8b")
    ops = mixed_operators(model, 0, 0, 8 * 1024, 0, chip.peak_flops, 8)
    attention = next(op for op in ops if op.name == "prefill_attention")
    one = next(op for op in mixed_operators(model, 0, 0, 1024, 0, chip.peak_flops, 1)
               if op.name == "prefill_attention")
    assert attention.flops == pytest.approx(8 * one.flops)
    assert causal_pairs(8 * 1024, None) > 60 * causal_pairs(1024, None)
    batch = evaluate("mixed", model, chip, 0, MixedShape(0, 8 * 1024, 0, 8), Layout(1), ceiling).cycle_time
    long = evaluate("mixed", model, chip, 0, MixedShape(0, 8 * 1024, 0, 1), Layout(1), ceiling).cycle_time
    single = evaluate("mixed", model, chip, 0, MixedShape(0, 1024, 0, 1), Layout(1), ceiling).cycle_time
    assert single < batch < long


def test_a_prefill_worker_batches_prompts_up_to_its_token_budget(h100):
    # Qwen3-235B-A22B (fp8) on TP4/EP4 H100 prefills a 512-token prompt alone reading 59 GB of
    # weights per chip (about 19 ms) for 5 ms of FLOPs; 16 prompts in one 8192-token step share
    # those reads, so a prefill worker serves several times 1 / t_p(1) prompts per second
    from roofline.models import with_dtypes
    from roofline.serving.disaggregated import prefill_step
    chip, ceiling = h100
    model = with_dtypes(load_model("qwen3-235b-a22b"), weights="fp8", experts="fp8")
    one = evaluate("mixed", model, chip, 0, MixedShape(0, 512, 0, 1), Layout(4, 1, 4), ceiling).cycle_time
    full = evaluate("mixed", model, chip, 0, MixedShape(0, 16 * 512, 0, 16), Layout(4, 1, 4), ceiling).cycle_time
    assert 16 / full > 2.5 / one
    assert prefill_step(0.02, 0.05, 8, 1) == 0.02 and prefill_step(0.02, 0.05, 8, 8) == 0.05
    assert prefill_step(0.02, 0.05, 8, 20) == 0.05 and prefill_step(0.02, 0.05, 1, 5) == 0.02
    assert 0.02 < prefill_step(0.02, 0.05, 8, 4) < 0.05


@settings(max_examples=8, deadline=None)
@given(st.sampled_from([8, 32, 128]), st.sampled_from([128, 1024]))
def test_eager_prefill_steps_slow_tpot_by_at_most_their_launch_time(concurrency, osl):
    # a step carrying prompt tokens pays E = tau_eager x layers; at most every step does (p <= 1),
    # so TPOT grows by more than 0 and by no more than E (plus the fixed point's settling, 1%)
    from dataclasses import replace as swap
    from roofline.serving.engines import load_engine
    from roofline.serving.model import Pool, aggregated, workload
    chip = load_hardware("h100-sxm")
    ceiling = ceilings(chip, "calibrated")
    model = load_model("llama-3.1-8b")
    load = workload(model, 1024, osl, concurrency=concurrency)
    base = swap(load_engine("trtllm", "h100-sxm"), eager_layer_overhead=0.0)
    slow = swap(base, eager_layer_overhead=100e-6)
    t0 = aggregated(model, chip, Pool(Layout(1)), ceiling, base, load).tpot_s
    t1 = aggregated(model, chip, Pool(Layout(1)), ceiling, slow, load).tpot_s
    assert t0 < t1 <= (t0 + 100e-6 * model.num_layers) * 1.01


def test_inferencemax_rows_with_data_parallel_attention_run_on_their_tp_chips():
    # The 2026-04-06 dump writes MiniMax-M2.5's TP4/EP4 runs as tp 4 x attention_dp 4 (moe_ep 16);
    # the 2026-03-25 dump has runs of the same configuration as tp 4: 13 of the 15 pairs measured
    # TPOT within 2% of each other, so the same 4 chips, not 16.
    rows = [r for r in serving_rows.read_rows(str(ROWS)) if "MiniMax" in r["model_path"]]
    predictions, skipped = validate_file(None, rows=rows)
    assert len(predictions) == 30 and not skipped
    by_run = {}
    for p in predictions:
        by_run.setdefault((p.isl, p.osl, p.concurrency), []).append(p)
    twins = [v for v in by_run.values() if len(v) == 2]
    assert len(twins) == 15
    assert sum(a.measured_tpot_s == pytest.approx(b.measured_tpot_s, rel=0.05) for a, b in twins) >= 13
    # the same 4 chips either way: TP4, or 4 attention groups of TP1 with the experts over 4
    assert {serving.benchmarks.layout_of(r).chips for r in rows} == {4}
    # read as 16 chips the TPOT median error was 37%; on 4 chips 19% (the rest: docs/serving.md)
    assert statistics.median(abs(p.tpot_error) for p in predictions) < 0.25


def test_a_row_naming_the_checkpoints_own_expert_format_keeps_the_spec_dtypes():
    # gpt-oss-120b ships bf16 attention and MXFP4 experts; its rows say nvfp4 for both: the engine
    # serves the released checkpoint, so the attention weights stay bf16 (4x the bytes of nvfp4)
    from roofline.serving.benchmarks import _model_for
    row = {"model_path": "openai/gpt-oss-120b", "gemm_quant_mode": "nvfp4", "moe_quant_mode": "nvfp4"}
    model = _model_for(row, {})
    assert model.dtypes["weights"] == "bf16" and model.dtypes["experts"] == "mxfp4"
    # a dense model quantized by the row is requantized as before
    dense = _model_for({"model_path": "Qwen/Qwen3-32B", "gemm_quant_mode": "fp8", "moe_quant_mode": "fp8"}, {})
    assert dense.dtypes["weights"] == "fp8"


def test_the_engine_fit_selects_rows_by_every_clause():
    from roofline.serving.fit import row_filter
    rows = serving_rows.read_rows(str(ROWS))
    keep = row_filter("concurrency<=64,mode=agg")
    chosen = [r for r in rows if keep(r)]
    assert chosen and all((r.get("mode") or "agg") == "agg" for r in chosen)
    assert all(serving_rows.client_concurrency(r) <= 64 for r in chosen)
    # 661 aggregated rows at concurrency <= 64 (the 810 predicted less the 149 above 64)
    assert len(chosen) == 661


def test_data_parallel_attention_groups_schedule_their_own_sequences():
    """With G data-parallel attention groups each runs its own scheduler (vLLM and SGLang DP ranks,
    TensorRT-LLM attention DP): the step waits for one group's host work on its B/G sequences, not
    all B in turn, and the engine's running-sequence limit holds per group. DeepSeek-V3 over EP72 on
    GB200 at 2048 clients: 28 sequences a group, not a 256-sequence cap and 2048 x tau_seq."""
    from roofline.serving.engines import load_engine
    from roofline.serving.model import host_time, running_limit
    vllm = load_engine("vllm", "h100-sxm")
    dp = Layout(1, 1, 72, 1, 32)
    assert host_time(vllm, dp, 2048) == pytest.approx(vllm.step_overhead + 2048 / 72 * vllm.sequence_overhead)
    assert host_time(vllm, Layout(8, 1, 8), 64) == pytest.approx(vllm.step_overhead + 64 * vllm.sequence_overhead)
    assert running_limit(vllm, dp, 10 ** 6) == 72 * vllm.max_sequences
    assert running_limit(vllm, dp, 5000) == 5000
    r = serving.serve("deepseek-v3", "gb200", isl=1024, osl=1024, concurrency=2048, tp=1, ep=72,
                      redundant_experts=32)
    assert r.queue_s == 0 and r.running == pytest.approx(2048, rel=0.05)
