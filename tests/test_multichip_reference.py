"""Hand-checked multi-chip cases (issue 14): each test writes out its arithmetic.

Shapes come from the model cards (hidden size, layers, experts); link figures from
hardware_specs/links (NVLink 4: 450 GB/s per direction per GPU, NVLink 5: 900 GB/s, InfiniBand
NDR: 50 GB/s per GPU). Ideal mode has no latency per crossing, so its collective times are the
bandwidth terms alone; the algorithm choices are checked with an explicit 3 us per crossing.
"""
import math

import pytest
from hypothesis import given, settings, strategies as st

import roofline
from roofline.collectives import (Fabric, Network, allreduce, alltoall, destination_ranks, torus_axes)
from roofline.deployment import communication, stage_work
from roofline.hardware import load_hardware
from roofline.models import load_model
from roofline.parallel import make_layout
from roofline.step import ceilings

NVLINK4, NVLINK5, IB_NDR = 450e9, 900e9, 50e9
ALPHA = 3e-6


def _rows(result):
    return {row.name: row for row in result.operators}


def test_deepseek_v3_on_8_h200_tp8_batch_64_context_8k():
    """DeepSeek-V3, TP8 with the experts over the same 8 GPUs (ep = tp, the default), batch 64.

    After the attention all-reduce every GPU holds all 64 tokens, so the dispatch is local; the MoE
    output (routed experts of this GPU + its slice of the shared expert) is one more all-reduce.
    Two all-reduces in each of the 61 layers, no all-to-all. Message: 64 x 7168 x 2 B = 917,504 B.
    Two-shot through the NVSwitch: 2 x 7/8 x 917,504 / 450e9 = 3.568 us (ideal); 122 of them
    435.3 us. Memory per GPU: 671e9 fp8 weights / 8 = 83.9 GB (every weight split 8 ways), plus
    the MLA latent cache replicated on all 8: 64 x 8193 x 61 x 576 x 2 B = 36.85 GB.
    """
    r = roofline.decode("deepseek-v3", "h200", batch=64, context=8192, tp=8, mode="ideal")
    rows = _rows(r)
    assert (r.tp, r.ep, r.chips) == (8, 8, 8)
    assert "dispatch" not in rows and "combine" not in rows
    message = 64 * 7168 * 2
    per_allreduce = 2 * 7 / 8 * message / NVLINK4
    assert per_allreduce == pytest.approx(3.568e-6, rel=1e-3)
    for name in ("allreduce_attn", "allreduce_ffn"):
        assert rows[name].count == 61
        assert rows[name].time_s == pytest.approx(61 * per_allreduce, rel=1e-9)
    assert r.kv_cache_bytes == pytest.approx(64 * 8193 * 61 * 576 * 2, rel=1e-9)
    assert r.weight_bytes == pytest.approx(671e9 / 8, rel=0.01)      # 671B is rounded (+-0.1%)
    # the old accounting (one all-reduce and an all-to-all pair per MoE layer) is gone: 2 per layer
    assert r.link_latency_time_s == 0.0


def test_llama_405b_fp8_on_8_b200_tp8_allreduce_algorithms():
    """Llama-3.1-405B, TP8 over the 8 B200s of an HGX node (NVLink 5), batch 1.

    Message: one token's residual stream, 16384 x 2 B = 32,768 B, 2 x 126 = 252 all-reduces a step.
    With 3 us a crossing: one-shot 3 x 3 + 32,768 / (900e9 / 7) us = 9.255 us, two-shot
    6 x 3 + 2 x 32,768 / 8 / (900e9 / 7) us = 18.06 us: one-shot wins; 252 x 9.255 us = 2.33 ms
    (the old tree charge was 2 x 3 x 3 = 18 us each, 4.54 ms). Ideal: 2 x 7/8 x 32,768 / 900e9
    = 63.7 ns each, 16.1 us a step. At batch 64 the message is 2 MB: two-shot, 18 + 2.039 us.
    """
    model, hardware = load_model("llama-3.1-405b"), load_hardware("b200")
    layout = make_layout(model, 1, tp=8)
    net = Network(up=Fabric("switched", NVLINK5, ALPHA, 8))
    one = allreduce(32768, 8, net)
    assert one.time == pytest.approx(9e-6 + 32768 * 7 / NVLINK5, rel=1e-9)
    assert 252 * one.time == pytest.approx(2.332e-3, rel=1e-3)
    big = allreduce(64 * 32768, 8, net)
    assert big.time == pytest.approx(18e-6 + 2 * 64 * 32768 / 8 * 7 / NVLINK5, rel=1e-9)
    comms = communication(model, layout, 1, 1, Network(up=Fabric("switched", NVLINK5, 0.0, 8)),
                          ceilings(hardware, "ideal"))
    assert sum(c.total_time for c in comms) == pytest.approx(252 * 2 * 7 / 8 * 32768 / NVLINK5, rel=1e-9)
    r = roofline.decode("llama-3.1-405b", "b200", batch=1, context=1024, tp=8, weights_dtype="fp8", mode="ideal")
    assert r.link_bandwidth_time_s == pytest.approx(16.06e-6, rel=1e-3)


def test_kimi_k2_on_16_h200_ep16_splits_traffic_over_nvlink_and_infiniband():
    """Kimi K2 on two HGX H200 nodes: attention TP8 in 2 data-parallel groups, 384 experts over 16 GPUs
    (24 each), batch 64. Each GPU dispatches 64 / 16 = 4 tokens. A GPU is skipped by a token's 8
    experts with probability C(360, 8) / C(384, 8) = 0.5938, so a token reaches 16 x 0.4062 = 6.50
    GPUs, 15/16 of them (6.09) remote: 7/15 of those on the own node's NVLink (2.84), 8/15 over
    InfiniBand (3.25). fp8 dispatch with a 4 B scale per 128 values: 1.03125 B a value.
    Far bytes: 4 x 3.25 x 7168 x 1.03125 = 96.1 KB at 50 GB/s = 1.92 us, near ones 84 KB at
    450 GB/s = 0.19 us; both at once: the InfiniBand part ends last. The old model sent all
    4 x 8 copies at InfiniBand rate: 4 x 8 x 7168 x 2 x 15/16 / 50e9 = 8.6 us.
    """
    miss = math.comb(360, 8) / math.comb(384, 8)
    assert miss == pytest.approx(0.5938, abs=1e-4)
    ranks = destination_ranks(384, 8, 16)
    assert ranks == pytest.approx(16 * (1 - miss), rel=1e-12)
    remote = ranks * 15 / 16
    near, far = remote * 7 / 15, remote * 8 / 15
    per_value = 1 + 4 / 128
    far_bytes = 4 * far * 7168 * per_value
    near_bytes = 4 * near * 7168 * per_value
    r = roofline.decode("kimi-k2", "h200", batch=64, context=1024, tp=8, ep=16, mode="ideal")
    rows = _rows(r)
    moe_layers = 60
    assert rows["dispatch"].count == moe_layers
    assert rows["dispatch"].bytes == pytest.approx(moe_layers * (near_bytes + far_bytes), rel=1e-9)
    assert rows["dispatch"].time_s == pytest.approx(moe_layers * far_bytes / IB_NDR, rel=1e-9)
    assert far_bytes / IB_NDR == pytest.approx(1.92e-6, rel=0.01)
    assert far_bytes / IB_NDR > near_bytes / NVLINK4
    combine = 4 * far * 7168 * 2 / IB_NDR                           # combine returns bf16
    assert rows["combine"].time_s == pytest.approx(moe_layers * combine, rel=1e-9)
    # attention all-reduce inside each 8-GPU group: 32 tokens x 7168 x 2 B, two-shot
    assert rows["allreduce_attn"].time_s == pytest.approx(61 * 2 * 7 / 8 * 32 * 7168 * 2 / NVLINK4, rel=1e-9)


def test_glm_47_over_19_wafers_whole_layer_stages_and_kv_room():
    """GLM-4.7 (92 layers, bf16) as a pipeline of 19 WSE-3 wafers.

    Whole layers, spread as vLLM does (get_pp_indices: the 92 mod 19 = 16 extra layers on stages
    before the last, which holds the LM head): the fullest stage runs 5 layers, never 92/19 = 4.84,
    and the head's stage 4 plus the head: max(5 t, 4 t + t_head). At 38 stages the fullest runs 3
    layers (2 on the head's), where the fractional count gave 2.42 (-19%).
    KV cache: 92 layers x 8 KV heads x 128 x 2 (K and V) x 2 B = 376,832 B a token (the issue's
    376 KB); a stage of 5 layers keeps 5/92 of it: 20,480 B a token on the fullest wafer.
    """
    assert stage_work(92.0, 0.0, 92, 38) == 3.0
    assert stage_work(92.0, 0.5, 92, 19) == 5.0
    assert stage_work(92.0, 1.5, 92, 19) == 5.5
    assert stage_work(80.0, 1.0, 80, 4) == 21.0            # 80 = 4 x 20: the head's stage runs 20 + 1
    assert stage_work(92.0, 1.5, 92, 1) == 93.5
    assert 376832 == 92 * 8 * 128 * 2 * 2
    r = roofline.decode("glm-4.7", "wse-3", batch=19, context=4096, pp=19, mode="ideal")
    assert r.microbatches == 19
    assert r.kv_cache_bytes == pytest.approx(19 * 4097 * 5 * 8 * 128 * 2 * 2, rel=1e-9)


def test_prefill_micro_batches_add_stage_times_to_the_first_token():
    """A prefill of 4 sequences in 4 micro-batches over 4 stages: the last micro-batch leaves the last
    stage 3 stage times after the first: TTFT = t_token(one micro-batch) + 3 t_stage."""
    one = roofline.prefill("llama-3.1-70b", "h100-sxm", prompt=2048, batch=4, pp=4, microbatches=1, mode="ideal")
    four = roofline.prefill("llama-3.1-70b", "h100-sxm", prompt=2048, batch=4, pp=4, microbatches=4, mode="ideal")
    single = roofline.prefill("llama-3.1-70b", "h100-sxm", prompt=2048, batch=1, pp=4, mode="ideal")
    assert four.time_s == pytest.approx(single.time_s + 3 * four.stage_time_s, rel=1e-9)
    assert four.time_s < one.time_s


def test_collectives_by_fabric():
    """A full mesh leaves a small group's other links idle: 2 of 8 MI300X reach each other over one
    64 GB/s link (448 GB/s / 7), where a switch would give the pair all 448. A torus runs rings
    along its axes: 8 chips of a 2D torus are 4 x 2, 2 x (3 + 1) crossings. Past the scale-up
    domain the all-reduce is hierarchical: reduce-scatter and all-gather on NVLink (two-shot of
    8), then the 1/8 slices across the 2 nodes on InfiniBand."""
    mesh = Network(up=Fabric("point-to-point", 448e9, 0.0, 8))
    switch = Network(up=Fabric("switched", 448e9, 0.0, 8))
    assert allreduce(1e6, 2, mesh).time == pytest.approx(2 * 1e6 / 2 / 64e9)
    assert allreduce(1e6, 2, switch).time == pytest.approx(2 * 1e6 / 2 / 448e9)
    assert allreduce(1e6, 8, mesh).time == pytest.approx(allreduce(1e6, 8, switch).time)
    assert torus_axes(8, 2) == [4, 2] and torus_axes(64, 3) == [4, 4, 4]
    torus = Network(up=Fabric("torus", 400e9, 1e-6, 256, 2))
    assert allreduce(0.0, 8, torus).latency == pytest.approx(2 * (3 + 1) * 1e-6)
    assert allreduce(1e6, 8, torus).bandwidth == pytest.approx(2 * 7 / 8 * 1e6 / 400e9)
    two_level = Network(up=Fabric("switched", NVLINK4, ALPHA, 8), out=Fabric("switched", IB_NDR, 2e-6))
    t = allreduce(8e6, 16, two_level)
    inner = 6 * ALPHA + 2 * 7 / 8 * 8e6 / NVLINK4
    outer = min(3 * 2e-6 + 1e6 / IB_NDR, 6 * 2e-6 + 1e6 / IB_NDR)
    assert t.time == pytest.approx(inner + outer, rel=1e-9)
    a2a = alltoall(1e6, 1e6, 16, two_level)
    assert a2a.time == pytest.approx(max(ALPHA + 1e6 / NVLINK4, 2e-6 + 1e6 / IB_NDR))


def test_nccl_ring_grows_with_the_gpu_count_where_one_shot_does_not():
    """gpt-fast all-reduces through PyTorch's NCCL (funcol), lmdeploy TurboMind through
    ftNcclAllReduceSum: a ring of 2 (n - 1) steps, not the custom one-shot. NCCL's own cost model
    (src/graph/tuning.cc): LL protocol 6.6 us + 0.6 us a step over NVLink, at a quarter of the link
    bandwidth. One token of Llama-2-7B (4096 x 2 B = 8192 B) on A100s (NVLink 3, 300 GB/s):
    TP 2: 6.6 + 2 x 0.6 = 7.8 us; TP 8: 6.6 + 14 x 0.6 = 15.0 us, plus 2 x 7/8 x 8192 / 75e9 =
    0.19 us. The one-shot at 3 us a crossing is 9 us + 8192 / (300e9 / 7) at any n. RCCL (MI300X,
    xGMI): 12.0 + 14 x 0.8 = 23.2 us at TP 8. In ideal mode no latency: the library ring costs the
    ring optimum 2 (n - 1) / n S / BW (Simple), the same as the custom two-shot's."""
    def net(library, charge=True, kind="switched", bw=300e9, alpha=ALPHA):
        return Network(up=Fabric(kind, bw, alpha, 8), library=library, library_latency=charge)
    message = 4096 * 2
    assert allreduce(message, 2, net("nccl")).latency == pytest.approx(7.8e-6)
    t8 = allreduce(message, 8, net("nccl"))
    assert t8.latency == pytest.approx(15.0e-6)
    assert t8.bandwidth == pytest.approx(2 * 7 / 8 * message / 75e9)
    for n in (2, 8):
        assert allreduce(message, n, net("custom")).latency == pytest.approx(9e-6)
    assert allreduce(message, 8, net("rccl", kind="point-to-point", bw=448e9)).latency == pytest.approx(23.2e-6)
    for n in (2, 4, 8):
        ideal = allreduce(1e6, n, net("nccl", charge=False, alpha=0.0))
        assert ideal.latency == 0.0
        assert ideal.time == pytest.approx(allreduce(1e6, n, net("custom", alpha=0.0)).time)
    # over a full mesh a pair of GPUs has one link (448 / 7 = 64 GB/s): ideal ring = two-shot = S / 64e9
    mesh = allreduce(1e6, 2, net("rccl", charge=False, kind="point-to-point", bw=448e9, alpha=0.0))
    assert mesh.time == pytest.approx(1e6 / 64e9)
    # a large message switches NCCL to the Simple protocol (full bandwidth, 8.4 + 14 x 3.4 us)
    big = allreduce(64e6, 8, net("nccl"))
    assert big.latency == pytest.approx(8.4e-6 + 14 * 3.4e-6)


def test_unknown_collective_library_is_refused():
    from roofline.deployment import forward_pass
    from roofline.errors import RooflineError
    from roofline.parallel import Layout
    with pytest.raises(RooflineError, match="collective library must be one of custom, nccl, rccl"):
        forward_pass("decode", load_model("llama-2-7b"), load_hardware("a100-sxm"), 1, 128, Layout(2),
                     collectives="mpi")


LAYOUTS = [("llama-3.1-70b", "a100-sxm", dict(tp=8)), ("llama-3.1-70b", "a100-sxm", dict(tp=2, pp=2)),
           ("llama-2-7b", "a100-sxm", dict(tp=4)), ("llama-3.1-70b", "h100-sxm", dict(tp=2)),
           ("mixtral-8x7b", "h100-sxm", dict(tp=8)), ("deepseek-v3", "h100-sxm", dict(tp=8, ep=16)),
           ("deepseek-v3", "h100-sxm", dict(tp=8, pp=2)), ("llama-3.1-70b", "wse-3", dict(pp=4)),
           ("llama-3.1-8b", "h100-sxm", dict(tp=1, pp=4))]


@settings(max_examples=30, deadline=None)
@given(case=st.sampled_from(LAYOUTS), batch=st.sampled_from([2, 4, 16, 64, 256]),
       context=st.integers(16, 32768), phase=st.sampled_from(["decode", "prefill"]))
def test_ideal_is_a_lower_bound_on_calibrated_for_every_layout(case, batch, context, phase):
    model, chip, layout = case
    if phase == "decode":
        ideal = roofline.decode(model, chip, batch=batch, context=context, mode="ideal", **layout)
        calibrated = roofline.decode(model, chip, batch=batch, context=context, mode="calibrated", **layout)
    else:
        ideal = roofline.prefill(model, chip, prompt=min(context, 8192), batch=batch, mode="ideal", **layout)
        calibrated = roofline.prefill(model, chip, prompt=min(context, 8192), batch=batch, mode="calibrated", **layout)
    assert ideal.time_s <= calibrated.time_s * (1 + 1e-9)
    assert ideal.token_latency_s <= calibrated.token_latency_s * (1 + 1e-9)


def test_chunked_attention_counts_the_pairs_of_each_chunk():
    """Llama 4 Maverick: 3 of 4 layers attend inside 8192-token chunks. A 32,768-token prompt is 4
    full chunks: 4 x 8192 x 8193 / 2 = 134.2M pairs a chunked layer, where a window sliding across
    chunks counts 32768 x 32769 / 2 - 24576 x 24577 / 2 = 234.9M (1.75x). In decode the new token
    at position c + 1 reads (c mod 8192) + 1 cached tokens: at c = 8192, one."""
    from roofline.operators import chunked_pairs, causal_pairs, chunk_position
    assert chunked_pairs(32768, 8192) == 4 * 8192 * 8193 / 2
    assert causal_pairs(32768, 8192) / chunked_pairs(32768, 8192) == pytest.approx(1.75, rel=1e-3)
    assert chunk_position(8192 + 1, 8192) == 1 and chunk_position(8191 + 1, 8192) == 8192
    model = load_model("llama-4-maverick")
    from roofline.operators import decode_operators, prefill_operators
    peaks = load_hardware("h200").peak_flops
    local = [op for op in prefill_operators(model, 1, 32768, peaks) if op.kind == "attention" and "local" in op.group]
    flops_per_pair = 4 * model.num_heads * model.head_dim
    assert local[0].flops == pytest.approx(4 * 8192 * 8193 / 2 * flops_per_pair, rel=1e-9)
    short = [op for op in decode_operators(model, 1, 8192, peaks) if op.kind == "attention" and "local" in op.group]
    assert short[0].flops == pytest.approx(1 * flops_per_pair, rel=1e-9)


def test_fp8_mla_cache_of_deepseek_v32_is_656_bytes_a_token():
    """FlashMLA's fp8 cache: 512 latent values at 1 B + 4 fp32 scales (one per 128) + 64 RoPE values
    at 2 B = 656 B per token per layer; the lightning indexer adds 128 fp8 + a 4 B scale = 132."""
    from roofline.memory import index_bytes_per_token_layer, kv_bytes_per_token_layer
    model = load_model("deepseek-v3.2")
    assert kv_bytes_per_token_layer(model) - index_bytes_per_token_layer(model) == 512 + 4 * 4 + 64 * 2 == 656
    assert index_bytes_per_token_layer(model) == 132


def test_tp_group_wider_than_a_domain_without_scale_out_exits_2():
    """Gaudi 3 joins 8 cards over its RoCE mesh and lists no scale-out link: a 16-wide TP group has no
    link to cross, one line and exit status 2."""
    from click.testing import CliRunner
    from roofline.cli import cli
    result = CliRunner().invoke(cli, ["decode", "--model", "llama-3.1-405b", "--hardware", "gaudi3", "--tp", "16"])
    assert result.exit_code == 2
    assert "no link that joins 16 chips" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_published_row_with_an_unknown_collective_library_exits_2(tmp_path):
    """A published row's collectives cell names the engine's library; another word is refused in one
    line, exit status 2."""
    from click.testing import CliRunner
    from roofline.cli import cli
    path = tmp_path / "rows.csv"
    path.write_text("model,hardware,num_chips,parallelism,precision,batch,metric,value,unit,collectives\n"
                    "llama-2-7b,a100-sxm,2,TP=2,bf16,1,decode_tokens_per_s_per_user,150,tok/s,mpi\n")
    result = CliRunner().invoke(cli, ["validate", "-i", str(path)])
    assert result.exit_code == 2
    assert "collectives 'mpi' must be one of custom, nccl, rccl" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_overlap_hides_the_moe_all_to_all_under_the_shared_experts():
    """DeepSeek-V3 on 16 H200 (TP 8, EP 16, batch 64), calibrated: with --overlap moe each MoE
    layer's dispatch and combine run while its shared expert computes (DeepEP), so the step loses
    min(t_dispatch + t_combine, t_shared): here the shared-expert GEMMs, the smaller of the two."""
    args = dict(batch=64, context=4096, tp=8, ep=16, mode="calibrated")
    plain = roofline.decode("deepseek-v3", "h200", **args)
    over = roofline.decode("deepseek-v3", "h200", overlap=True, **args)
    rows = {row.name: row.time_s for row in plain.operators}
    a2a = rows["dispatch"] + rows["combine"]
    shared = sum(t for name, t in rows.items() if name.startswith("shared_"))
    assert plain.time_s - over.time_s == pytest.approx(min(a2a, shared), rel=1e-6)
    assert over.link_latency_time_s + over.link_bandwidth_time_s == pytest.approx(
        plain.link_latency_time_s + plain.link_bandwidth_time_s - min(a2a, shared), rel=1e-6)
    assert any(note.startswith("overlap:") for note in over.notes)
    ideal = roofline.decode("deepseek-v3", "h200", overlap=True, **{**args, "mode": "ideal"})
    assert ideal.time_s == roofline.decode("deepseek-v3", "h200", **{**args, "mode": "ideal"}).time_s
    assert any("--overlap applies in calibrated mode" in note for note in ideal.notes)
    inside = roofline.decode("deepseek-v3", "h200", overlap=True, **{**args, "ep": 8})
    assert inside.time_s == roofline.decode("deepseek-v3", "h200", **{**args, "ep": 8}).time_s
    assert any(note.startswith("overlap: nothing to hide") for note in inside.notes)


OVERLAP_CASES = [("deepseek-v3", "h200", dict(tp=8, ep=16)), ("deepseek-v3", "h100-sxm", dict(tp=4, ep=32)),
                 ("kimi-k2", "h200", dict(tp=8, ep=16)), ("mixtral-8x7b", "h100-sxm", dict(tp=2)),
                 ("qwen3-235b-a22b", "h100-sxm", dict(tp=8, ep=16))]


@settings(max_examples=25, deadline=None)
@given(case=st.sampled_from(OVERLAP_CASES), batch=st.sampled_from([32, 64, 256, 1024]),
       context=st.integers(16, 32768), phase=st.sampled_from(["decode", "prefill"]),
       collectives=st.sampled_from(["custom", "nccl"]))
def test_overlap_is_never_slower_and_ideal_stays_below(case, batch, context, phase, collectives):
    model, chip, layout = case
    if phase == "decode":
        def run(mode, overlap):
            return roofline.decode(model, chip, batch=batch, context=context, mode=mode, overlap=overlap,
                                   collectives=collectives, **layout)
    else:
        def run(mode, overlap):
            return roofline.prefill(model, chip, prompt=min(context, 8192), batch=batch, mode=mode, overlap=overlap,
                                    collectives=collectives, **layout)
    plain, over, ideal = run("calibrated", False), run("calibrated", True), run("ideal", True)
    assert over.time_s <= plain.time_s * (1 + 1e-12)
    assert ideal.time_s <= over.time_s * (1 + 1e-9)


def test_collective_library_reaches_every_evaluation_path():
    """--collectives rides on the scenario's Ceilings, so a layout search and the solver price the
    same all-reduce as a plain decode. Llama-2-7B on 8 A100 at batch 1 (calibrated): NCCL's ring,
    6.6 + 14 x 0.6 = 15.0 us a collective, against the one-shot's 3 x 3 = 9 us: 64 collectives a
    step, 64 x 6.0 us = 384 us slower."""
    from roofline import solve
    args = dict(batch=1, context=1024, mode="calibrated")
    custom = roofline.decode("llama-2-7b", "a100-sxm", tp=8, **args)
    nccl = roofline.decode("llama-2-7b", "a100-sxm", tp=8, collectives="nccl", **args)
    assert nccl.collectives == "nccl"
    assert nccl.time_s - custom.time_s == pytest.approx(64 * 6.0e-6, rel=0.02)
    searched = roofline.decode("llama-2-7b", "a100-sxm", chips=8, collectives="nccl", **args)
    assert searched.time_s == pytest.approx(nccl.time_s, rel=1e-9)
    # 8 GPUs reach 331 tok/s per user with the one-shot, 294 with NCCL's ring: 300 is in reach of one only
    fast = solve.solve_chips("llama-2-7b", "a100-sxm", tokens_per_s_per_user=300, max_chips=8, mode="calibrated")
    slow = solve.solve_chips("llama-2-7b", "a100-sxm", tokens_per_s_per_user=300, max_chips=8, mode="calibrated",
                             collectives="nccl")
    assert fast.feasible and not slow.feasible
