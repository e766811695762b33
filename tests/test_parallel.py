"""Multi-chip formulas and layouts: collectives, pipeline hops, micro-batches, layout checks."""
import math

import pytest
from click.testing import CliRunner

import roofline
from roofline.cli import cli
from hypothesis import given, settings, strategies as st

from roofline.collectives import hop_time, pipeline_cycle, residual_bytes, routed_bytes
from roofline.parallel import Layout, attention_groups, candidate_layouts, divisors, make_layout, scale_up_domain


def test_pipeline_hop():
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
    (["--tp", "12"], "does not divide llama-3.1-70b's 64 attention heads"),
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


def test_tp_not_a_multiple_of_the_kv_heads_exits_2():
    """GLM-4.7: 96 query heads, 8 KV heads; tp=12 divides the heads but would cut a KV head in parts."""
    result = CliRunner().invoke(cli, ["decode", "--model", "glm-4.7", "--hardware", "h200", "--tp", "12"])
    assert result.exit_code == 2
    assert "not a multiple of them" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_tp_wider_than_the_kv_heads_replicates_them():
    """Qwen3-235B (64 query heads, 4 KV heads) at TP8, as the serving rows run it: each KV head is held by
    2 ranks, so a rank keeps 1/4 of the cache, not 1/8; its QKV projection holds 64/8 = 8 query heads
    and one KV head: (8 + 2) / (64 + 8) of the weights, not 1/8. Ideal, batch 16, context 4096."""
    args = dict(batch=16, context=4096, mode="ideal")
    eight = roofline.decode("qwen3-235b-a22b", "h100-sxm", tp=8, **args)
    four = roofline.decode("qwen3-235b-a22b", "h100-sxm", tp=4, **args)
    assert eight.kv_cache_bytes == pytest.approx(four.kv_cache_bytes)
    rows8, rows4 = ({r.name: r for r in x.operators} for x in (eight, four))
    assert rows8["qkv"].bytes == pytest.approx(rows4["qkv"].bytes * (8 + 2) / (16 + 2), rel=0.02)
    assert rows8["attention"].bytes == pytest.approx(rows4["attention"].bytes, rel=0.02)


def test_moe_tp_times_moe_ep_layout_and_redundant_experts():
    """MoE TP 2 x MoE EP 2 inside TP 4 (gpt-oss-120b serving rows): each expert split over 2 of the 4
    chips; per-chip routed bytes and memory equal the ep = tp layout's under uniform routing, with the
    same two all-reduces a layer. DeepSeek-V3 at EP 320 over 256 experts (TP 1): one expert a chip, 64
    redundant copies; a chip holds 1/256 of the routed weights, not 1/320."""
    args = dict(batch=8, context=1024, mode="ideal")
    split = roofline.decode("gpt-oss-120b", "h100-sxm", tp=4, ep=2, **args)
    whole = roofline.decode("gpt-oss-120b", "h100-sxm", tp=4, ep=4, **args)
    assert split.time_s == pytest.approx(whole.time_s, rel=1e-9)
    assert split.weight_bytes == pytest.approx(whole.weight_bytes, rel=1e-9)
    wide = roofline.decode("deepseek-v3", "h200", batch=320, context=1024, mode="ideal", tp=1, ep=320)
    routed = DS_MOE_LAYERS * DS_EXPERTS * 3 * DS_HIDDEN * DS_EXPERT_INTER
    assert wide.chips == 320
    assert wide.weight_bytes == pytest.approx(routed / 256 + (DS_TOTAL_PARAMS - routed), rel=0.01)


def test_chip_without_links_cannot_be_chained():
    result = CliRunner().invoke(cli, ["decode", "--model", "llama-2-7b", "--hardware", "m4-max", "--chips", "2"])
    assert result.exit_code == 2
    assert "no link" in result.output or "cannot be split" in result.output


def test_auto_layout_is_named():
    r = roofline.decode("llama-3.1-70b", "h100-sxm", batch=1, context=1024, chips=8, mode="ideal")
    assert r.tp * r.pp == 8
    assert any("chosen" in note for note in r.notes)
    assert math.isfinite(r.tokens_per_s)


# Expert parallelism wider than the TP group (ep > tp): data-parallel attention groups.
# DeepSeek-V3 shapes from its config (arXiv 2412.19437, Table/App. and HF config.json): hidden 7168,
# 61 layers of which the first 3 dense, 256 routed experts of intermediate size 2048 (gated: 3
# matrices), 8 per token; MLA latent cache kv_lora_rank 512 + rope 64 values per token per layer.
DS_HIDDEN, DS_LAYERS, DS_MOE_LAYERS, DS_EXPERTS, DS_EXPERT_INTER = 7168, 61, 58, 256, 2048
DS_TOTAL_PARAMS = 671e9       # "671B total parameters" (arXiv 2412.19437, abstract), MTP module excluded
DS_LATENT = 512 + 64


def test_deepseek_ep_layout_memory_matches_hand_computation():
    """TP=8 attention groups inside EP=64 (8 groups), one stage, batch 64 at fp8 weights: a chip holds
    4 of the 256 experts of every MoE layer, 1/8 of everything else, and the latent cache of its
    group's 8 sequences (replicated over the group's 8 chips, MLA). The 671B total is rounded to
    three figures (+-0.5B): +-0.06 GB on 12.4 GB per chip, inside the 1% tolerance."""
    r = roofline.decode("deepseek-v3", "h200", batch=64, context=4096, mode="ideal", tp=8, ep=64)
    routed = DS_MOE_LAYERS * DS_EXPERTS * 3 * DS_HIDDEN * DS_EXPERT_INTER          # params, 1 B each at fp8
    expected_weights = routed / 64 + (DS_TOTAL_PARAMS - routed) / 8
    assert r.chips == 64 and r.tp == 8 and r.ep == 64
    assert r.weight_bytes == pytest.approx(expected_weights, rel=0.01)
    expected_kv = 8 * (4096 + 1) * DS_LAYERS * DS_LATENT * 2                       # bf16 latent cache
    assert r.kv_cache_bytes == pytest.approx(expected_kv, rel=1e-9)


def test_data_parallel_attention_splits_the_latent_cache():
    """MLA's latent cache is replicated over TP chips; with the same 8 chips as 8 data-parallel
    attention groups each chip keeps and reads 1/8 of it (the reason DeepSeek-V3 decodes with DP
    attention, arXiv 2412.19437 Sec. 3.4.2), so a long-context, large-batch decode is faster."""
    args = dict(batch=256, context=8192, mode="ideal")
    tensor = roofline.decode("deepseek-v3", "h200", tp=8, ep=8, **args)
    groups = roofline.decode("deepseek-v3", "h200", tp=1, ep=8, **args)
    assert tensor.chips == groups.chips == 8
    assert groups.kv_cache_bytes == pytest.approx(tensor.kv_cache_bytes / 8)
    assert groups.tokens_per_s_per_user > tensor.tokens_per_s_per_user


def test_dispatch_and_combine_bytes():
    """TP=8 attention groups in EP=64 on 64 H200s (8 NVLink nodes), batch 64: each chip dispatches its
    64/64 = 1 token once to each distinct remote rank holding one of its 8 experts. Four experts a
    rank: a rank is missed with probability C(252, 8) / C(256, 8) = 0.8794, so a token reaches
    64 x 0.1206 = 7.72 ranks, 63/64 of them remote; 7/63 of those share the NVLink node. Dispatch
    in fp8 with a 4-byte scale per 128 values (DeepSeek-V3's experts are fp8), combine in bf16. Ideal
    mode: no latency; the IB part (50 GB/s) ends last."""
    miss = math.comb(252, 8) / math.comb(256, 8)
    remote = 64 * (1 - miss) * 63 / 64
    far = remote * 56 / 63
    assert routed_bytes(64, 8, DS_HIDDEN, 2, 64) == 64 * 8 * DS_HIDDEN * 2 / 64 == 114688
    r = roofline.decode("deepseek-v3", "h200", batch=64, context=1024, mode="ideal", tp=8, ep=64)
    rows = {row.name: row for row in r.operators}
    for name, per_value in (("dispatch", 1 + 4 / 128), ("combine", 2)):
        assert rows[name].count == DS_MOE_LAYERS
        assert rows[name].bytes == pytest.approx(DS_MOE_LAYERS * remote * DS_HIDDEN * per_value, rel=1e-9)
        assert rows[name].time_s == pytest.approx(DS_MOE_LAYERS * far * DS_HIDDEN * per_value / 50e9, rel=1e-9)
    assert any("ib-ndr" in note for note in r.notes)


def test_deepseek_prefill_unit_is_expressible():
    """DeepSeek-V3's prefill unit: attention TP4 x DP8, MoE EP32 on 32 GPUs (arXiv 2412.19437 Sec. 3.4.1)."""
    r = roofline.prefill("deepseek-v3", "h200", prompt=4096, batch=8, mode="ideal", tp=4, ep=32)
    assert r.chips == 32
    layout = make_layout(roofline.load_model("deepseek-v3"), 8, tp=4, ep=32)
    assert layout.describe() == "TP=4, EP=32 (8 data-parallel attention groups), PP=1"
    assert make_layout(roofline.load_model("deepseek-v3"), 64, tp=8, pp=4, ep=64).describe() == \
        "TP=8, EP=64 (8 data-parallel attention groups), PP=4, 4 micro-batches"


@pytest.mark.parametrize("args, message", [
    (["--tp", "8", "--ep", "12", "--batch", "8"], "ep=12 is neither a divisor nor a multiple of tp=8"),
    (["--tp", "8", "--ep", "3"], "ep=3 is neither a divisor nor a multiple of tp=8"),
    (["--tp", "8", "--ep", "24", "--batch", "8"], "ep=24 does not divide deepseek-v3's 256 experts"),
    (["--tp", "8", "--ep", "64", "--batch", "4"], "batch must be at least 8, got 4"),
    (["--tp", "8", "--ep", "64", "--pp", "2", "--batch", "8", "--microbatches", "2"], "batch must be at least 16"),
    (["--tp", "8", "--ep", "64", "--batch", "64", "--chips", "32"], "does not equal ep x pp = 64 x 1 = 64"),
    (["--ep", "0"], "ep must be a whole number"),
    (["--tp", "8", "--moe-tp", "3"], "moe-tp=3 does not divide tp=8"),
    (["--tp", "8", "--moe-tp", "2", "--ep", "8"], "moe-tp=2 with tp=8 means ep=4, not ep=8"),
    (["--moe-tp", "2", "--chips", "8"], "moe-tp=2 needs the tensor-parallel width it splits (--tp)"),
])
def test_bad_expert_parallel_layouts_exit_2_with_one_line(args, message):
    result = CliRunner().invoke(cli, ["decode", "--model", "deepseek-v3", "--hardware", "h200", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_wide_expert_parallelism_on_a_dense_model_exits_2():
    result = CliRunner().invoke(cli, ["decode", "--model", "llama-3.1-70b", "--hardware", "h100-sxm", "--tp", "2",
                                      "--ep", "8", "--batch", "8"])
    assert result.exit_code == 2
    assert "has no experts" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_moe_tensor_and_expert_parallel_sizes_are_separate_numbers():
    """MoE TP x MoE EP = TP when the experts stay inside the TP group: Qwen3-235B (128 experts) on
    8 H100s with --moe-tp 2 is ep = 4 expert groups of 2 chips, each expert split over its 2; the
    answer names both. ep = tp: MoE TP 1, MoE EP 8; ep = 1: MoE TP 8, MoE EP 1; ep > tp (attention
    DP): whole experts, MoE TP 1, MoE EP = ep. A dense model has neither."""
    r = roofline.decode("qwen3-235b-a22b", "h100-sxm", tp=8, moe_tp=2, mode="ideal")
    assert (r.tp, r.ep, r.moe_tp, r.moe_ep) == (8, 4, 2, 4)
    assert r.to_dict()["moe_tp"] == 2 and r.to_dict()["moe_ep"] == 4
    assert (Layout(8, 1, 8).moe_tp, Layout(8, 1, 8).moe_ep) == (1, 8)
    assert (Layout(8, 1, 1).moe_tp, Layout(8, 1, 1).moe_ep) == (8, 1)
    assert (Layout(4, 1, 32).moe_tp, Layout(4, 1, 32).moe_ep) == (1, 32)
    dense = roofline.decode("llama-3.1-70b", "h100-sxm", tp=2, mode="ideal")
    assert dense.moe_tp is None and dense.moe_ep is None
    same = roofline.decode("qwen3-235b-a22b", "h100-sxm", tp=8, ep=4, mode="ideal")
    assert same.time_s == r.time_s
    text = CliRunner().invoke(cli, ["decode", "-m", "qwen3-235b-a22b", "-c", "h100-sxm", "--tp", "8", "--moe-tp", "2"])
    assert "MoE tensor parallel (MoE TP)  2" in text.output and "MoE expert parallel (MoE EP)  4" in text.output


def test_moe_tp_on_a_dense_model_exits_2():
    result = CliRunner().invoke(cli, ["decode", "--model", "llama-3.1-70b", "--hardware", "h100-sxm", "--tp", "2",
                                      "--moe-tp", "2"])
    assert result.exit_code == 2
    assert "moe-tp=2: llama-3.1-70b has no experts" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_chips_alone_considers_expert_parallel_layouts():
    """64 H200s for DeepSeek-V3 at batch 64: TP is capped at the 8-GPU NVLink node, so layouts with
    experts inside the TP group need 8 pipeline stages, which run one after another; one stage of
    EP=64 streams about 1/64 of the expert weights per chip per token and is faster per user."""
    r = roofline.decode("deepseek-v3", "h200", batch=64, context=1024, mode="ideal", chips=64)
    assert (r.chips, r.ep, r.pp) == (64, 64, 1)
    assert any("chosen" in note for note in r.notes)


def test_fullest_stage_holds_a_full_stage_of_moe_layers():
    """DeepSeek-V3 in 4 stages of ceil(61/4) = 16 layers: the first 3 layers are dense, so a middle
    stage holds 16 MoE layers, 16/58 of the routed experts (not 16/61 of them, 5% less). With TP=8
    and EP=64: 16 x 4 experts per chip, 16/61 of the other layer weights and the LM head over 8
    chips (129,280 x 7168 vocabulary matrix). 1% tolerance: the 671B total is rounded (+-0.2%)."""
    r = roofline.decode("deepseek-v3", "h200", batch=64, context=1024, mode="ideal", tp=8, ep=64, pp=4)
    routed = DS_MOE_LAYERS * DS_EXPERTS * 3 * DS_HIDDEN * DS_EXPERT_INTER
    head = 129280 * DS_HIDDEN
    experts = 16 * (DS_EXPERTS // 64) * 3 * DS_HIDDEN * DS_EXPERT_INTER
    others = (DS_TOTAL_PARAMS - routed - 2 * head) * 16 / DS_LAYERS + head
    assert r.weight_bytes == pytest.approx(experts + others / 8, rel=0.01)


def _brute_force_layouts(model, chips, batch, domain):
    """Every (tp, pp, ep) of exactly `chips` chips, found by trying every tp, ep and pp up to the
    chip count through make_layout (the checked rules), TP inside the scale-up domain: what the
    divisor enumeration of candidate_layouts must reproduce without looping to the chip count."""
    found = set()
    for tp in range(1, min(chips, domain) + 1):
        for ep in [None] + list(range(2 * tp, chips + 1)):
            for pp in range(1, chips + 1):
                try:
                    layout = make_layout(model, batch, tp=tp, pp=pp, ep=ep)
                except roofline.RooflineError:
                    continue
                if layout.chips == chips:
                    found.add((layout.tp, layout.pp, layout.ep))
    return found


@settings(max_examples=12, deadline=None)
@given(st.sampled_from(["deepseek-v3", "llama-3.1-70b", "qwen3-235b-a22b"]), st.integers(1, 40), st.integers(1, 12))
def test_candidate_layouts_are_every_valid_split(model_id, chips, batch):
    model, hardware = roofline.load_model(model_id), roofline.load_hardware("h200")
    expected = _brute_force_layouts(model, chips, batch, scale_up_domain(hardware))
    try:
        got = {(l.tp, l.pp, l.ep) for l in candidate_layouts(model, hardware, chips, batch)}
    except roofline.RooflineError:
        got = set()
    assert got == expected


def test_attention_groups_is_one_formula():
    """ep / tp data-parallel attention groups when ep > tp, else one (DeepSeek-V3 decode: EP320 over
    TP1 attention groups; prefill: TP4 x DP8 with EP32, arXiv 2412.19437 Sec. 3.4)."""
    assert attention_groups(4, 32) == 8 == Layout(4, 1, 32).attention_groups
    assert attention_groups(8, 8) == 1 == Layout(8, 1, 8).attention_groups
    assert attention_groups(8, 1) == 1
    assert Layout(1, 2, 320).chips == 640


def test_divisors_without_looping_to_n():
    assert divisors(256) == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert divisors(97) == [1, 97]
    assert divisors(10**12)[-1] == 10**12 and len(divisors(10**12)) == 169     # (12 + 1)^2


@pytest.mark.parametrize("command", [
    ["decode", "--model", "llama-3.1-8b", "--hardware", "h100-sxm", "--chips", "1000000000"],
    ["prefill", "--model", "deepseek-v3", "--hardware", "h200", "--prompt", "1024", "--chips", "1000000000"],
    ["solve", "batch", "--model", "deepseek-v3", "--hardware", "h200", "--chips", "1000000000",
     "--tokens-per-s-per-user", "20"],
    ["solve", "context", "--model", "llama-3.1-8b", "--hardware", "h100-sxm", "--chips", "1000000000"],
    ["solve", "chips", "--model", "llama-3.1-8b", "--hardware", "h100-sxm", "--tokens-per-s-per-user", "20",
     "--max-chips", "1000000000"],
])
def test_absurd_chip_counts_exit_2_naming_the_limit(command):
    """A billion chips is past any cluster (MAX_CHIPS = 1,000,000): refused in one line that states
    the limit, instead of a layout search that walked to the chip count."""
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 2, result.output
    assert "at most 1,000,000" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_large_prime_chip_count_answers_at_once_that_it_cannot_be_split():
    """999,983 chips (prime, inside the limit): no TP group divides it and it exceeds the layers."""
    result = CliRunner().invoke(cli, ["decode", "--model", "llama-3.1-8b", "--hardware", "h100-sxm",
                                      "--chips", "999983"])
    assert result.exit_code == 2
    assert "999983 chips cannot be split" in result.output


def test_layout_note_says_when_a_larger_batch_unlocks_a_faster_layout():
    """Issue 13's case: qwen3-235b-a22b on 16 B200s, context 128. Batch 2 cannot fill the 4 attention
    groups of TP4/EP16 (it ran TP4/EP8/PP2, 3.023 ms, slower than batch 4's 2.834 ms). Since tensor
    parallelism may exceed the 4 KV heads (heads replicated, issue 14), batch 2 has a layout as fast
    as batch 4's: the step time no longer falls with batch here; where it still does, the smaller
    batch's output says its layout depends on the batch."""
    two = roofline.decode("qwen3-235b-a22b", "b200", batch=2, context=128, chips=16, mode="ideal")
    four = roofline.decode("qwen3-235b-a22b", "b200", batch=4, context=128, chips=16, mode="ideal")
    noted = any(n.startswith("layout depends on batch") for n in two.notes)
    assert four.time_s >= two.time_s or noted


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 24), st.integers(1, 24))
def test_auto_layout_step_time_grows_with_batch_or_says_why(a, b):
    """The property the project states for --chips N (issue 13, item 5): on one layout, a larger
    batch never takes less time per step; where a larger batch is faster, the smaller batch's
    output says that its layout depends on the batch."""
    small, large = sorted((a, b))
    args = dict(context=128, chips=16, mode="ideal")
    low = roofline.decode("qwen3-235b-a22b", "b200", batch=small, **args)
    high = roofline.decode("qwen3-235b-a22b", "b200", batch=large, **args)
    if high.time_s < low.time_s * (1 - 1e-9):
        assert (low.tp, low.pp, low.ep) != (high.tp, high.pp, high.ep)
        assert any(n.startswith("layout depends on batch") for n in low.notes)
