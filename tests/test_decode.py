"""The physics of a decode step against published and measured numbers, and bad input to
`roofline decode` / `roofline prefill`.

Each reference value names its source; each tolerance says why it is that wide.
"""
import dataclasses
import json

import pytest
from click.testing import CliRunner

import roofline
from roofline import dtypes
from roofline.cli import cli
from roofline.explain import explain
from roofline.hardware import load_hardware
from roofline.memory import kv_bytes_per_token, kv_cache_bytes, weight_bytes
from roofline.models import load_model
from roofline.operators import expected_experts
from roofline.step import critical_batch


# -- KV cache ---------------------------------------------------------------------------------

def test_kv_per_token_llama_3_1_8b():
    """2 (K and V) x 8 KV heads x 128 head dim x 32 layers x 2 B (bf16) = 131,072 B/token
    (config.json of meta-llama/Llama-3.1-8B; formula: scaling-book 'inference'). Exact arithmetic."""
    assert kv_bytes_per_token(load_model("llama-3.1-8b")) == 2 * 8 * 128 * 32 * 2 == 131072


def test_kv_per_token_deepseek_v3_mla():
    """MLA caches the 512-dim latent and the 64-dim RoPE key: 576 values x 61 layers x 2 B =
    70,272 B/token (DeepSeek-V2 paper arXiv 2405.04434 Sec. 2.1; V3 config kv_lora_rank 512,
    qk_rope_head_dim 64). Exact arithmetic."""
    assert kv_bytes_per_token(load_model("deepseek-v3")) == 576 * 61 * 2 == 70272


def test_gemma_3_sliding_layers_cap_at_window():
    """Gemma 3 27B: 52 local layers keep at most 1,024 tokens, 10 global keep all (Gemma 3 report,
    arXiv 2503.19786 Sec. 2; 16 KV heads x 128 dims x 2 B x 2 = 8,192 B per token per layer)."""
    gemma = load_model("gemma-3-27b")
    per_token_layer = 2 * 16 * 128 * 2
    for context in (512, 1024, 32768):
        expected = per_token_layer * (52 * min(context, 1024) + 10 * context)
        assert kv_cache_bytes(gemma, 1, context) == expected
    # a decode step's local attention reads the same bytes at any context beyond the window
    rows = {c: {(o.name, o.group): o.bytes for o in roofline.decode("gemma-3-27b", "h100-sxm", batch=4,
                                                                    context=c).operators} for c in (2000, 50000)}
    assert rows[2000][("attention", "local")] == rows[50000][("attention", "local")]
    assert rows[50000][("attention", "global")] > 20 * rows[2000][("attention", "global")]


def test_sparse_attention_reads_top_k():
    """DeepSeek-V3.2's attention reads index_topk = 2048 cached tokens; its indexer scores all
    (DeepSeek-V3.2 report): the attention bytes stop growing, the indexer's do not."""
    rows = {c: {(o.name, o.group): o.bytes for o in roofline.decode("deepseek-v3.2", "h100-sxm",
                                                                    context=c).operators} for c in (10000, 100000)}
    assert rows[10000][("attention", "moe")] == rows[100000][("attention", "moe")]
    assert rows[100000][("indexer", "moe")] == pytest.approx(10 * rows[10000][("indexer", "moe")], rel=1e-3)


# -- MoE ----------------------------------------------------------------------------------------

# distinct experts a DeepSeek-V3-shaped layer (E = 256, k = 8) touched at batch 1, 2, 4, ..., 256,
# measured (DESIGN.md, "The decode step")
MEASURED_EXPERTS = [8, 16, 29, 58, 102, 166, 226, 253, 256]


@pytest.mark.parametrize("batch, measured", [(2 ** i, m) for i, m in enumerate(MEASURED_EXPERTS)])
def test_expected_distinct_experts(batch, measured):
    """Uniform routing, E (1 - (1 - k/E)^B). 6%: the measurement is one routing sample of a real
    router, not uniform; the largest gap is at batch 4 (30.5 expected, 29 seen: 5.3%)."""
    assert expected_experts(256, 8, batch) == pytest.approx(measured, rel=0.06)


def test_moe_reads_active_params_at_batch_1_and_all_at_256():
    """DeepSeek-V3 (fp8 weights, 1 B each): a batch-1 step streams its ~37B active parameters
    (arXiv 2412.19437: '37B activated'), less the embedding table of which it reads one row; at
    batch 256 it streams nearly every expert (255.9 of 256 expected). 3%: the stated 37B is rounded
    and the computed active count is 37.55B."""
    active_less_embedding = 37e9 - 129280 * 7168
    one = {t["term"]: t["value_s"] for t in explain("decode", "deepseek-v3", "h100-sxm", batch=1, length=1,
                                                     mode="ideal").terms}
    assert one["weights streaming"] * 3.35e12 == pytest.approx(active_less_embedding, rel=0.03)
    many = {t["term"]: t["value_s"] for t in explain("decode", "deepseek-v3", "h100-sxm", batch=256, length=1,
                                                      mode="ideal").terms}
    all_weights = weight_bytes(load_model("deepseek-v3")) - 129280 * 7168
    assert many["weights streaming"] * 3.35e12 == pytest.approx(all_weights, rel=0.01)


# -- dtypes ---------------------------------------------------------------------------------------

def test_block_scaled_formats_at_true_size():
    """OCP Microscaling v1.0: MXFP4 is 32 e2m1 values + one 8-bit scale = 4.25 bits; NVFP4 is 16
    values + one fp8 scale = 4.5 bits. Exact."""
    assert dtypes.bytes_per_value("mxfp4") * 8 == 4.25
    assert dtypes.bytes_per_value("nvfp4") * 8 == 4.5


@pytest.mark.parametrize("model, gib", [("gpt-oss-120b", 60.8), ("gpt-oss-20b", 12.8)])
def test_gpt_oss_checkpoint_size(model, gib):
    """gpt-oss model card (OpenAI, Aug 2025, arXiv 2508.10925, Table 1): checkpoints of 60.8 GiB and
    12.8 GiB with MXFP4 experts and bf16 for the rest. 1%: the card rounds to 0.1 GiB (0.8% of
    12.8 GiB); a 4-bit count without scales would be 6% low."""
    assert weight_bytes(load_model(model)) / 2 ** 30 == pytest.approx(gib, rel=0.01)


# -- critical batch -------------------------------------------------------------------------------

def test_critical_batch_h100_bf16():
    """989.4 TFLOP/s dense bf16 x 2 B / (2 x 3.35 TB/s) = 295 (NVIDIA H100 SXM datasheet). The
    spec's figures give it to within rounding of the quoted 295."""
    h100 = load_hardware("h100-sxm")
    assert critical_batch(h100.peak_flops["bf16"], h100.mem_bandwidth, 2) == pytest.approx(295, abs=0.5)


def test_critical_batch_matches_the_measured_knee(h100_rows):
    """The measured 8192x28672 bf16 linear layer turns compute-bound where its flat memory floor
    meets its compute slope (largest batch); the formula with the measured ceilings of the same
    card (8192^3 matmul rate, read-only bandwidth) must land there. 10%: the knee from two straight
    lines is only as fine as the batches measured around it (192, 256, 384)."""
    linear = [r for r in h100_rows if r["kind"] == "linear"]
    floor = sorted(r["seconds"] for r in linear if r["batch"] <= 16)[2]
    largest = max(linear, key=lambda r: r["batch"])
    knee = floor / (largest["seconds"] / largest["batch"])
    matmul = next(r for r in h100_rows if r["kind"] == "matmul")["tflops"] * 1e12
    bandwidth = next(r for r in h100_rows if r["kind"] == "read_reduce")["gbps"] * 1e9
    assert critical_batch(matmul, bandwidth, 2) == pytest.approx(knee, rel=0.10)
    assert 256 <= knee <= 384


# -- a worked example from scaling-book -------------------------------------------------------------

SCALING_BOOK_LLAMA_13B = {1: 4.98, 8: 12.13, 16: 20.30, 32: 36.65, 64: 69.33, 240: 249.09}   # ms


@pytest.mark.parametrize("batch", SCALING_BOOK_LLAMA_13B)
def test_scaling_book_llama_2_13b_on_8_tpu_v5e(batch):
    """jax-ml/scaling-book inference.md, 'Modeling throughput and latency for LLaMA 2-13B': 8x TPU
    v5e, context 8192, bf16, 'Theoretical Step Time (ms)'. Units pinned: the table's 'GiB' are
    decimal GB (6.7 = 8192 x 40 x 128 x 40 x 2 x 2 B = 6.71e9 B; params 13e9 x 2 B = 26 GB), and its
    bandwidth is 8 x 0.82e12 B/s (32.7e9 B / 6.56e12 B/s = 4.98 ms; in GiB or TiB it would be
    5.35 ms or 4.53 ms). Our ideal mode on one chip with the 8 chips' bandwidth and FLOP/s. 2%: the
    book rounds parameters to 13e9 (13.016e9 here) and counts the embedding table as read (one row
    per sequence is), and rounds each cell; the largest gap is 0.8% at batch 1."""
    v5e = load_hardware("tpu-v5e")
    tier = dataclasses.replace(v5e.memory[0], bandwidth=8 * 0.82e12, capacity=8 * 16e9)
    eight = dataclasses.replace(v5e, id="8x-tpu-v5e", memory=(tier,) + v5e.memory[1:],
                                peak_flops={d: 8 * f for d, f in v5e.peak_flops.items()})
    llama_2_13b = {"hidden_size": "5120", "num_heads": "40", "num_kv_heads": "40", "intermediate_size": "13824",
                   "num_layers": "40"}  # Llama 2 13B config.json; the book's table: L 40, D 5120, N = K 40
    r = roofline.decode("llama-2-7b", eight, batch=batch, context=8192, mode="ideal", overrides=llama_2_13b)
    assert r.time_s * 1e3 == pytest.approx(SCALING_BOOK_LLAMA_13B[batch], rel=0.02)


# -- bad input -------------------------------------------------------------------------------------

DECODE = ["decode", "--model", "llama-3.1-8b", "--hardware", "h100-sxm"]
PREFILL = ["prefill", "--model", "llama-3.1-8b", "--hardware", "h100-sxm"]


@pytest.mark.parametrize("args, message", [
    (DECODE + ["--batch", "0"], "batch must be a whole number of at least 1, got 0"),
    (DECODE + ["--batch", "1.5"], "'1.5' is not a valid integer"),
    (DECODE + ["--context", "0"], "context must be a whole number of at least 1, got 0"),
    (DECODE + ["--context", "-5"], "context must be a whole number of at least 1"),
    (DECODE + ["--weights-dtype", "fp7"], "unknown weights dtype 'fp7'; expected one of"),
    (DECODE + ["--kv-dtype", "int3"], "unknown kv-cache dtype 'int3'"),
    (DECODE + ["--set", "num_layer=20"], "--set num_layer: no such model field"),
    (DECODE + ["--set", "num_layers=many"], "--set num_layers=many: expected a number"),
    (DECODE + ["--set", "num_layers=2.5"], "expected a whole number"),
    (DECODE + ["--set", "num_layers"], "expected FIELD=VALUE"),
    (DECODE + ["--mode", "fast"], "'fast' is not one of"),
    (["decode", "--model", "llama-9", "--hardware", "h100-sxm"], "unknown model id 'llama-9'"),
    (PREFILL + ["--prompt", "0"], "prompt must be a whole number of at least 1, got 0"),
    (PREFILL + ["--prompt", "100", "--batch", "0"], "batch must be a whole number of at least 1"),
    (PREFILL + ["--prompt", "10.5"], "'10.5' is not a valid integer"),
    (PREFILL + ["--prompt", "100", "--activations-dtype", "fp9"], "unknown activations dtype 'fp9'"),
])
def test_refusals_are_one_line_with_status_2(args, message):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_set_num_layers_changes_the_layer_count():
    base = roofline.decode("llama-3.1-8b", "h100-sxm", mode="ideal")
    fewer = roofline.decode("llama-3.1-8b", "h100-sxm", mode="ideal", overrides={"num_layers": "16"})
    layer_ops = sum(o.time_s for o in base.operators if o.group != "head")
    assert base.time_s - fewer.time_s == pytest.approx(layer_ops / 2, rel=1e-9)


def test_context_beyond_maximum_warns_and_answers():
    result = CliRunner().invoke(cli, DECODE + ["--context", "200000", "--format", "json"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["step_time_s"] > 0
    assert any("maximum of 131072 tokens" in note for note in data["notes"])


def test_model_that_does_not_fit_says_by_how_much_and_still_answers():
    """Llama 3.1 405B in bf16 needs ~811 GB of weights: about 10x an 80 GB H100."""
    result = CliRunner().invoke(cli, ["decode", "--model", "llama-3.1-405b", "--hardware", "h100-sxm",
                                      "--format", "json"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["fits"] is False and data["step_time_s"] > 0
    note = next(n for n in data["notes"] if n.startswith("does not fit"))
    assert "h100-sxm has 80 GB" in note and "(10.15x)" in note
