"""Multi-chip formulas and layouts: collectives, pipeline hops, micro-batches, layout checks."""
import math

import pytest
from click.testing import CliRunner

import roofline
from roofline.cli import cli
from roofline.parallel import allreduce_time, alltoall_time, hop_time, pipeline_cycle, residual_bytes


def test_allreduce_bandwidth_term_is_the_ring_bus_factor():
    """NCCL's bus bandwidth: busbw = algbw x 2(n-1)/n for all-reduce (nccl-tests PERFORMANCE.md)."""
    size, bandwidth = 1e9, 450e9
    for n in (2, 4, 8):
        t = allreduce_time(size, n, bandwidth, latency=0.0)
        assert t == pytest.approx(2 * (n - 1) / n * size / bandwidth, rel=1e-12)
    assert allreduce_time(size, 1, bandwidth, 1e-6) == 0


def test_small_allreduce_is_latency_bound():
    """A decode all-reduce (batch 1, hidden 8192, bf16: 16 KB) over NVLink 4 is latency-bound."""
    message = residual_bytes(1, 8192, 2)
    latency_part = allreduce_time(0.0, 8, 450e9, 3e-6)
    bandwidth_part = allreduce_time(message, 8, 450e9, 0.0)
    assert message == 16384
    assert latency_part > 10 * bandwidth_part


def test_alltoall_and_hop():
    assert alltoall_time(8e6, 8, 400e9, 2e-6) == pytest.approx(2e-6 + 7 / 8 * 8e6 / 400e9)
    assert alltoall_time(8e6, 1, 400e9, 2e-6) == 0
    assert hop_time(14336, 7.88e9, 2e-6) == pytest.approx(2e-6 + 14336 / 7.88e9)


def test_residual_stream_of_deepseek_is_14_kb_per_token():
    """DESIGN.md: hidden 7168 at bf16 is 14 KB per token between pipeline stages."""
    model = roofline.load_model("deepseek-v3")
    assert residual_bytes(1, model.hidden_size, 2) == 14336


def test_pipeline_cycle():
    assert pipeline_cycle(8e-3, 1e-3, 1) == 8e-3
    assert pipeline_cycle(8e-3, 1e-3, 8) == 8e-3
    assert pipeline_cycle(8e-3, 2e-3, 8) == 16e-3


def test_pipeline_adds_latency_not_throughput():
    """Stages run one after another: four pipeline stages do not cut the time per token the way four
    tensor-parallel chips do, and each hop adds its latency; without micro-batches the aggregate
    equals one chip's, with them it holds up (memory-bound decode, ideal mode)."""
    args = dict(batch=8, context=1024, mode="ideal")
    one = roofline.decode("llama-3.1-8b", "h100-sxm", **args)
    four = roofline.decode("llama-3.1-8b", "h100-sxm", tp=1, pp=4, **args)
    four_single = roofline.decode("llama-3.1-8b", "h100-sxm", tp=1, pp=4, microbatches=1, **args)
    tensor = roofline.decode("llama-3.1-8b", "h100-sxm", tp=4, **args)
    assert four.microbatches == 4
    assert four.time_s == pytest.approx(one.time_s, rel=0.15)
    assert tensor.tokens_per_s_per_user > 2 * four.tokens_per_s_per_user
    assert four_single.token_latency_s > one.time_s
    assert four_single.tokens_per_s == pytest.approx(one.tokens_per_s, rel=0.02)
    assert four.tokens_per_s == pytest.approx(one.tokens_per_s, rel=0.15)


def test_tensor_parallel_speeds_up_memory_bound_decode():
    """gpt-fast's Llama-2-70B bf16 on A100: TP 2 -> 8 raises per-user speed (21.3 -> 62.5 tok/s)."""
    speeds = [roofline.decode("llama-3.1-70b", "a100-sxm", batch=1, context=512, tp=tp, mode="ideal")
              .tokens_per_s_per_user for tp in (2, 4, 8)]
    assert speeds[0] < speeds[1] < speeds[2]


def test_mla_latent_cache_is_replicated_over_tensor_parallel_chips():
    one = roofline.decode("deepseek-v3", "h200", batch=8, context=4096, mode="ideal", tp=8)
    gqa = roofline.decode("llama-3.1-70b", "h200", batch=8, context=4096, mode="ideal", tp=8)
    whole = roofline.decode("deepseek-v3", "h200", batch=8, context=4096, mode="ideal")
    assert one.kv_cache_bytes == pytest.approx(whole.kv_cache_bytes)
    whole_gqa = roofline.decode("llama-3.1-70b", "h200", batch=8, context=4096, mode="ideal")
    assert gqa.kv_cache_bytes == pytest.approx(whole_gqa.kv_cache_bytes / 8)


@pytest.mark.parametrize("args, message", [
    (["--tp", "16"], "larger than llama-3.1-70b's 8 KV heads"),
    (["--pp", "100"], "larger than llama-3.1-70b's 80 layers"),
    (["--chips", "2.5"], "not a valid integer"),
    (["--chips", "8", "--link", "ib-xdr"], "has no link 'ib-xdr'"),
    (["--tp", "2", "--pp", "2", "--chips", "8"], "does not equal tp x pp"),
    (["--tp", "2", "--ep", "2"], "has no experts"),
    (["--pp", "4", "--microbatches", "9", "--batch", "4"], "9 micro-batches need"),
    (["--chips", "0"], "chips must be a whole number"),
])
def test_bad_layouts_exit_2_with_one_line(args, message):
    result = CliRunner().invoke(cli, ["decode", "--model", "llama-3.1-70b", "--hardware", "h100-sxm", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_chip_without_links_cannot_be_chained():
    result = CliRunner().invoke(cli, ["decode", "--model", "llama-2-7b", "--hardware", "m4-max", "--chips", "2"])
    assert result.exit_code == 2
    assert "no link" in result.output or "cannot be split" in result.output


def test_auto_layout_is_named():
    r = roofline.decode("llama-3.1-70b", "h100-sxm", batch=1, context=1024, chips=8, mode="ideal")
    assert r.tp * r.pp == 8
    assert any("chosen" in note for note in r.notes)
    assert math.isfinite(r.tokens_per_s)
