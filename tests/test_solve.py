"""The solver: answers, binding constraints, infeasible targets, bad input, and monotonicity."""
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st

import roofline
from roofline import scenario, solve
from roofline.binding import BINDING_TEXT, binding
from roofline.cli import cli
from roofline.memory import footprint, weight_bytes
from roofline.parallel import Layout, candidate_layouts
from roofline.placement import decode_memory, fits


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_headline_query_answers_with_binding_and_why():
    result = run("solve", "chips", "--model", "glm-4.7", "--hardware", "wse-3", "--tokens-per-s-per-user", "1000")
    assert result.exit_code == 0, result.output
    assert "binding" in result.output and "why:" in result.output
    assert "more chips than" in result.output          # why more wafers do or do not raise per-user speed


def test_headline_query_fp8_json():
    result = run("solve", "chips", "--model", "glm-4.7", "--hardware", "wse-3", "--tokens-per-s-per-user", "1000",
                 "--weights-dtype", "fp8", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {"chips", "binding", "feasible"} <= set(data)
    bf16 = json.loads(run("solve", "chips", "--model", "glm-4.7", "--hardware", "wse-3",
                          "--tokens-per-s-per-user", "1000", "--format", "json").output)
    # fp8 halves the weight bytes: about half the wafers hold them
    assert data["chips"] < bf16["chips"]
    assert data["chips"] >= 0.4 * bf16["chips"]


def test_capacity_minimum_matches_weight_bytes():
    """GLM-4.7 at bf16: 355B params x 2 B = ~710 GB; 44 GB wafers need at least 17."""
    answer = solve.solve_chips("glm-4.7", "wse-3", tokens_per_s_per_user=1, mode="ideal")
    weights = roofline.decode("glm-4.7", "wse-3", mode="ideal").weight_bytes
    assert answer.feasible
    assert answer.answer >= weights / 44e9
    assert answer.binding == "capacity"


def test_unreachable_target_exits_1_and_says_why():
    result = run("solve", "chips", "--model", "llama-3.1-70b", "--hardware", "h100-sxm",
                 "--tokens-per-s-per-user", "100000")
    assert result.exit_code == 1
    assert "no layout reaches" in result.output


def test_solve_batch_keeps_the_target():
    answer = solve.solve_batch("llama-3.1-8b", "h100-sxm", tokens_per_s_per_user=50, context=1024)
    assert answer.feasible
    at = roofline.decode("llama-3.1-8b", "h100-sxm", batch=answer.answer, context=1024)
    above = roofline.decode("llama-3.1-8b", "h100-sxm", batch=answer.answer + 1, context=1024)
    assert at.tokens_per_s_per_user >= 50
    assert above.tokens_per_s_per_user < 50 or not above.fits


def test_solve_context_fills_memory():
    answer = solve.solve_context("llama-3.1-8b", "h100-sxm", batch=1)
    assert answer.binding == "capacity"
    fits = roofline.decode("llama-3.1-8b", "h100-sxm", batch=1, context=answer.answer)
    too_long = roofline.decode("llama-3.1-8b", "h100-sxm", batch=1, context=answer.answer + 1000)
    assert fits.fits and not too_long.fits


def test_solve_bandwidth_scales_memory_bound_decode():
    """Batch-1 decode is weight streaming: twice the speed needs about twice the bandwidth (ideal)."""
    now = roofline.decode("llama-3.1-8b", "h100-sxm", mode="ideal").tokens_per_s_per_user
    answer = solve.solve_bandwidth("llama-3.1-8b", "h100-sxm", tokens_per_s_per_user=2 * now, mode="ideal")
    assert answer.answer == pytest.approx(2 * 3.35e12, rel=0.02)


def test_solve_params_closed_form():
    """'44 GB fits about 20B parameters at fp16': 44e9 / 2 B = 22B with nothing reserved."""
    answer = solve.solve_params("wse-3", chips=1, weights_dtype="fp16", reserve=0.0)
    assert answer.answer == pytest.approx(22e9)


@pytest.mark.parametrize("args, message", [
    (["--tokens-per-s-per-user", "0"], "greater than zero"),
    (["--tokens-per-s-per-user", "-5"], "greater than zero"),
    (["--tokens-per-s", "0"], "must be a finite number greater than zero"),
    (["--tokens-per-s", "inf"], "must be a finite number greater than zero, got inf"),
    (["--tokens-per-s", "1e309"], "must be a finite number greater than zero, got inf"),
    (["--tokens-per-s-per-user", "nan"], "must be a finite number greater than zero, got nan"),
    (["--tokens-per-s-per-user", "10", "--max-usd-per-mtok", "inf"], "max-usd-per-mtok must be a finite"),
    (["--tokens-per-s-per-user", "10", "--max-chips", "1000001"], "max-chips must be at most 1,000,000"),
    ([], "give a target"),
    (["--tokens-per-s-per-user", "10", "--batch", "0"], "batch must be"),
    (["--tokens-per-s-per-user", "10", "--max-chips", "1.5"], "not a valid integer"),
    (["--tokens-per-s-per-user", "10", "--link", "nvlink9"], "has no link 'nvlink9'"),
])
def test_bad_solver_input_exits_2(args, message):
    result = run("solve", "chips", "--model", "llama-3.1-8b", "--hardware", "h100-sxm", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_compare_side_by_side():
    result = run("compare", "--hardware", "h100-sxm", "--hardware", "gb200", "--model", "llama-3.1-70b",
                 "--batch", "8", "--chips", "8", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["hardware"] for r in rows] == ["h100-sxm", "gb200"]
    assert rows[1]["tokens_per_s_per_user"] > rows[0]["tokens_per_s_per_user"]


@settings(max_examples=8, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12))
def test_more_chips_never_lower_aggregate_throughput(a, b):
    small, large = sorted((a, b))
    low = solve.best_within("llama-3.1-8b", "h100-sxm", small, batch=8, mode="ideal")
    high = solve.best_within("llama-3.1-8b", "h100-sxm", large, batch=8, mode="ideal")
    assert high["tokens_per_s"] >= low["tokens_per_s"] * (1 - 1e-12)


@settings(max_examples=8, deadline=None)
@given(st.floats(10, 400), st.floats(0.1, 1.0))
def test_looser_target_never_needs_more_chips(target, looser):
    strict = solve.solve_chips("llama-3.1-70b", "h100-sxm", tokens_per_s_per_user=target, mode="ideal", max_chips=64)
    loose = solve.solve_chips("llama-3.1-70b", "h100-sxm", tokens_per_s_per_user=target * looser, mode="ideal",
                              max_chips=64)
    if strict.feasible:
        assert loose.feasible and loose.answer <= strict.answer


def test_cost_limit_is_checked_against_usd_per_mtok():
    """$/Mtok = price x chips / tokens per s x 1e6 (cost.usd_per_mtok): a limit just above the
    answer's cost keeps it, one below it makes the target unreachable (exit 1)."""
    free = solve.solve_chips("llama-3.1-70b", "h100-sxm", tokens_per_s_per_user=30, batch=64)
    cost = free.result["usd_per_mtok"]
    hw = roofline.load_hardware("h100-sxm")
    expected = hw.price * free.result["chips_per_replica"] / free.result["tokens_per_s"] * 1e6
    assert cost == pytest.approx(expected, rel=1e-9)
    kept = solve.solve_chips("llama-3.1-70b", "h100-sxm", tokens_per_s_per_user=30, batch=64,
                             max_usd_per_mtok=cost * 1.01)
    assert kept.feasible and kept.answer == free.answer
    result = run("solve", "chips", "--model", "llama-3.1-70b", "--hardware", "h100-sxm", "--tokens-per-s-per-user",
                 "30", "--batch", "1", "--max-usd-per-mtok", "0.5")
    assert result.exit_code == 1
    assert "cost more than 0.5 USD" in result.output


def test_cost_limit_needs_a_price():
    result = run("solve", "chips", "--model", "llama-3.1-70b", "--hardware", "gb200", "--tokens-per-s-per-user", "30",
                 "--max-usd-per-mtok", "2")
    assert result.exit_code == 2
    assert "no price" in result.output
    priced = run("solve", "chips", "--model", "llama-3.1-70b", "--hardware", "gb200", "--tokens-per-s-per-user", "30",
                 "--max-usd-per-mtok", "200", "--price", "6 USD/hour")
    assert priced.exit_code == 0, priced.output
    bad = run("solve", "chips", "--model", "llama-3.1-70b", "--hardware", "gb200", "--tokens-per-s-per-user", "30",
              "--max-usd-per-mtok", "2", "--price", "6")
    assert bad.exit_code == 2 and "has no unit" in bad.output


def test_kimi_k2_on_groq_needs_expert_parallelism_beyond_tp():
    """Kimi K2 (1T parameters, fp8: ~1.03 TB) on 230 MB Groq LPUs needs at least ~4,463 chips; TP is
    capped at its 64 heads and layers at 61 stages (3,904 chips), so it places only with experts
    spread over more chips than a TP group: the answer uses ep > tp and is at least the capacity
    minimum (memory.weight_bytes / 230 MB)."""
    answer = solve.solve_chips("kimi-k2", "groq-lpu", tokens_per_s_per_user=100, batch=8)
    minimum = weight_bytes(roofline.load_model("kimi-k2")) / 230e6
    assert minimum == pytest.approx(4463, rel=1e-3)
    assert answer.feasible, answer.why
    assert answer.answer >= minimum
    assert answer.result["ep"] > answer.result["tp"]


def test_kimi_k2_on_groq_at_batch_1_says_a_larger_batch_allows_wider_ep():
    """One sequence fills one attention group only, so ep <= tp <= 64 and 61 stages hold too little."""
    result = run("solve", "chips", "--model", "kimi-k2", "--hardware", "groq-lpu", "--tokens-per-s-per-user", "100")
    assert result.exit_code == 1
    assert "a larger --batch allows EP up to 384" in result.output


@settings(max_examples=6, deadline=None)
@given(st.integers(1, 64), st.integers(1, 64))
def test_more_chips_never_lower_aggregate_throughput_with_expert_parallelism(a, b):
    small, large = sorted((a, b))
    low = solve.best_within("deepseek-v3", "h200", small, batch=16, mode="ideal")
    high = solve.best_within("deepseek-v3", "h200", large, batch=16, mode="ideal")
    if low is not None:
        assert high["tokens_per_s"] >= low["tokens_per_s"] * (1 - 1e-12)


@settings(max_examples=6, deadline=None)
@given(st.floats(10, 400), st.floats(0.1, 1.0))
def test_looser_target_never_needs_more_chips_with_expert_parallelism(target, looser):
    args = dict(batch=16, mode="ideal", max_chips=64)
    strict = solve.solve_chips("deepseek-v3", "h200", tokens_per_s_per_user=target, **args)
    loose = solve.solve_chips("deepseek-v3", "h200", tokens_per_s_per_user=target * looser, **args)
    if strict.feasible:
        assert loose.feasible and loose.answer <= strict.answer


def _layout_of(result):
    """The layout keywords of a solver answer, to feed it back through roofline.decode."""
    return {k: result[k] for k in ("tp", "pp", "ep", "microbatches")}


def test_solve_batch_never_calls_a_missed_target_feasible():
    """Issue 9: 8 x H200, DeepSeek-V3, 20 tokens/s per user at 8192 tokens answered batch 648
    `feasible` at 19.3 tokens/s (0.965x), because the layout changed with the batch under the
    bisection. The answer now holds on its own layout, and one more sequence misses on every split."""
    result = run("solve", "batch", "-m", "deepseek-v3", "-c", "h200", "--chips", "8", "--tokens-per-s-per-user", "20",
                 "--context", "8192", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["feasible"] and min(data["margins"].values()) >= 1
    batch = data["batch"]
    back = roofline.decode("deepseek-v3", "h200", batch=batch, context=8192, **_layout_of(data["result"]))
    assert back.fits and back.tokens_per_s_per_user >= 20
    model, hardware = roofline.load_model("deepseek-v3"), roofline.load_hardware("h200")
    for layout in candidate_layouts(model, hardware, 8, batch + 1):
        more = roofline.decode("deepseek-v3", "h200", batch=batch + 1, context=8192, tp=layout.tp, pp=layout.pp,
                               ep=layout.ep, microbatches=layout.microbatches)
        assert not (more.fits and more.tokens_per_s_per_user >= 20), layout


def test_solve_chips_chooses_the_batch_for_an_aggregate_target():
    """Issue 9: Llama-3.1-70B fp8 on B200 at 1M tokens/s and 30 tokens/s per user kept batch 1 and
    answered 8,736 chips; with --batch 256 it answered 83. Choosing the batch must do at least as
    well as any batch a user could give, and say that it chose."""
    # the figures are ideal mode (the B200 had no calibration then; it is transferred now)
    args = ["solve", "chips", "-m", "llama-3.1-70b", "-c", "b200", "--tokens-per-s", "1000000",
            "--tokens-per-s-per-user", "30", "--weights-dtype", "fp8", "--mode", "ideal", "--format", "json"]
    chosen = json.loads(run(*args).output)
    given_256 = json.loads(run(*args, "--batch", "256").output)
    assert given_256["chips"] == 83
    assert chosen["feasible"] and chosen["chips"] <= given_256["chips"]
    assert any("chosen by the solver" in line for line in chosen["why"])
    r = chosen["result"]
    assert r["batch"] > 1
    back = roofline.decode("llama-3.1-70b", "b200", batch=r["batch"], context=1024, weights_dtype="fp8",
                           mode="ideal", **_layout_of(r))
    assert back.fits and back.tokens_per_s_per_user >= 30
    assert r["replicas"] * back.tokens_per_s >= 1e6
    assert r["replicas"] * back.chips == chosen["chips"]


def test_solve_context_searches_layouts():
    """Issue 9: 8 x H200, DeepSeek-V3, batch 16 answered 97,798 tokens on TP=4, EP=8, while TP=1,
    EP=8 holds 160,000 (MLA's latent cache is copied on every chip of a TP group). The answer is
    at least that, holds on its layout, and one token more fits no split of the 8 chips."""
    result = run("solve", "context", "-m", "deepseek-v3", "-c", "h200", "--chips", "8", "--batch", "16",
                 "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    context = data["context"]
    assert context >= 160000
    assert roofline.decode("deepseek-v3", "h200", batch=16, context=160000, tp=1, ep=8).fits
    assert roofline.decode("deepseek-v3", "h200", batch=16, context=context, **_layout_of(data["result"])).fits
    model, hardware = roofline.load_model("deepseek-v3"), roofline.load_hardware("h200")
    for layout in candidate_layouts(model, hardware, 8, 16):
        assert not roofline.decode("deepseek-v3", "h200", batch=16, context=context + 1, tp=layout.tp, pp=layout.pp,
                                   ep=layout.ep, microbatches=layout.microbatches).fits, layout


def test_headline_capacity_line_shows_its_arithmetic():
    """Issue 9: the headline said "capacity alone needs 18 chips (706 GB)" while 706 / 44 = 16.05.
    The line now shows need / capacity = ratio -> ceil, and why the layout rules need more: 17
    wafers as a 17-stage pipeline put 6 of GLM-4.7's 92 layers on one wafer (ceil(92/17) = 6)."""
    result = run("solve", "chips", "--model", "glm-4.7", "--hardware", "wse-3", "--tokens-per-s-per-user", "1000")
    assert result.exit_code == 0, result.output
    need = footprint(roofline.load_model("glm-4.7"), 1, 1025)["total"]
    ratio = need / 44e9
    assert math.ceil(ratio) == 17
    line = next(line for line in result.output.splitlines() if line.startswith("why: capacity:"))
    assert f"{need / 1e9:.4g} GB of weights, KV cache and activations / 44 GB per chip = {ratio:.4g} -> 17 chips" \
        in line
    assert "no layout of 17 fits (best: TP=1, PP=17" in line and "the fewest that fits is 18" in line
    assert result.output.startswith("chips") and "19 chips" in result.output.splitlines()[0]


def test_fits_is_one_definition():
    """The API's `fits`, the solver's capacity margin and placement.fits agree at the boundary the
    solver finds: the longest context fits, one token more does not."""
    answer = solve.solve_context("llama-3.1-8b", "h100-sxm", batch=4)
    hardware = roofline.load_hardware("h100-sxm")
    at = roofline.decode("llama-3.1-8b", "h100-sxm", batch=4, context=answer.answer)
    over = roofline.decode("llama-3.1-8b", "h100-sxm", batch=4, context=answer.answer + 1)
    assert at.fits and not over.fits
    model = roofline.load_model("llama-3.1-8b")
    assert fits(decode_memory(model, Layout(), 4, answer.answer), hardware)
    assert not fits(decode_memory(model, Layout(), 4, answer.answer + 1), hardware)
    assert at.memory_needed_bytes == decode_memory(model, Layout(), 4, answer.answer)["total"]


def test_binding_is_the_largest_term_first_on_ties():
    assert binding({"memory": 1.0, "compute": 2.0, "overhead": 0.5}) == "compute"
    assert binding({"memory": 1.0, "compute": 1.0}) == "memory"
    arrays = binding({"memory": np.array([1.0, 3.0]), "compute": np.array([2.0, 1.0]), "overhead": 0.0})
    assert list(arrays) == ["compute", "memory"]
    r = roofline.decode("llama-3.1-8b", "h100-sxm", batch=512, context=1024)
    assert r.bound == binding({"memory": r.memory_time_s, "compute": r.compute_time_s, "overhead": r.overhead_time_s,
                               "link latency": 0.0, "link bandwidth": 0.0})
    assert set(BINDING_TEXT) >= {"memory", "compute", "overhead", "link latency", "link bandwidth", "capacity"}


def test_solve_commands_take_the_question_options():
    """The shared options reach the solver: an fp8 KV cache holds about twice the sequences of a
    bf16 one where memory binds (2 bytes -> 1 byte per value, weights unchanged); a fixed layout
    is kept; a price given on compare prices a chip whose spec has none."""
    base = ["solve", "batch", "-m", "llama-3.1-70b", "-c", "h100-sxm", "--tp", "4", "--tokens-per-s-per-user", "5",
            "--context", "8192", "--mode", "ideal", "--format", "json"]
    bf16 = json.loads(run(*base).output)
    fp8 = json.loads(run(*base, "--kv-dtype", "fp8").output)
    assert bf16["binding"] == fp8["binding"] == "capacity"
    assert fp8["result"]["tp"] == 4 and fp8["result"]["pp"] == 1
    assert 1.8 < fp8["batch"] / bf16["batch"] < 2.2
    compared = json.loads(run("compare", "-m", "llama-3.1-70b", "-c", "h100-sxm", "-c", "gb200", "--tp", "8",
                              "--price", "10 USD/hour", "--format", "json").output)
    for row in compared:
        assert row["chips"] == 8
        assert row["usd_per_mtok"] == pytest.approx(10 / 3600 * 8 / row["tokens_per_s"] * 1e6, rel=1e-9)
    wider = run("solve", "context", "-m", "deepseek-v3", "-c", "h200", "--tp", "1", "--ep", "8", "--batch", "16",
                "--calibration", "nope")
    assert wider.exit_code == 2 and len(wider.output.strip().splitlines()) == 1


def test_solver_takes_a_scenario():
    """A Scenario is the base question: the same answer as ids and options, its layout kept."""
    question = scenario.build("deepseek-v3", "h200", batch=16, tp=1, ep=8, mode="ideal")
    from_scenario = solve.solve_context(question)
    from_ids = solve.solve_context("deepseek-v3", "h200", batch=16, tp=1, ep=8, mode="ideal")
    assert from_scenario.answer == from_ids.answer
    assert from_scenario.result["ep"] == 8 and from_scenario.result["tp"] == 1
    with pytest.raises(roofline.RooflineError, match="carries its own chip"):
        solve.solve_context(question, "h100-sxm")


def test_aggregate_beyond_max_chips_is_unreachable_not_a_huge_answer():
    """1e300 tokens/s would need ~1e296 replicas: beyond --max-chips the target is unreachable
    (exit 1, saying how many replicas), and the count never overflows."""
    result = run("solve", "chips", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--tokens-per-s", "1e300")
    assert result.exit_code == 1, result.output
    assert "more than 1,000,000 replicas" in result.output and "more than --max-chips 20000" in result.output


def test_a_fixed_wide_expert_layout_with_a_chosen_batch():
    """--tp 8 --ep 64 fixes the replica (8 attention groups need 8 sequences at least); the solver
    chooses the batch: the fewest sequences with which one replica reaches 1000 tokens/s."""
    result = run("solve", "chips", "-m", "deepseek-v3", "-c", "h200", "--tokens-per-s", "1000", "--tp", "8",
                 "--ep", "64", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    r = data["result"]
    assert (r["tp"], r["ep"], r["pp"], r["replicas"]) == (8, 64, 1, 1)
    assert r["batch"] >= 8 and r["tokens_per_s"] >= 1000
    fewer = roofline.decode("deepseek-v3", "h200", batch=r["batch"] - 1, tp=8, ep=64) if r["batch"] > 8 else None
    assert fewer is None or fewer.tokens_per_s < 1000
    assert "the layout asked for" in " ".join(data["why"])
