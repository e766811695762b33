"""`roofline explain`: the symbolic step time, substituted, is the number api.decode/prefill gives.

The symbolic form is built by the same operator and step functions with sympy symbols for batch,
context, bandwidth, peaks, layer counts, fixed costs and bytes per value; if any formula treated
symbols differently from floats (a Python `if` on a value, a lost term), the substituted
expression would differ from the float computation. 1e-9 relative is far above float64 rounding
(~1e-16 per operation over ~100 terms) and far below any physical term (the smallest, an
RMSNorm, is ~1e-4 of a step).
"""
import pytest
import sympy
from click.testing import CliRunner

import roofline
from roofline.cli import cli
from roofline.explain import explain, general

FAMILIES = ["llama-3.1-8b", "deepseek-v3", "gemma-3-27b", "deepseek-v3.2", "gpt-oss-120b"]


@pytest.mark.parametrize("model", FAMILIES)
@pytest.mark.parametrize("mode", ["ideal", "calibrated"])
def test_decode_expression_equals_api(model, mode):
    for batch, context in ((1, 1024), (256, 5000)):
        e = explain("decode", model, "h100-sxm", batch=batch, length=context, mode=mode)
        expected = roofline.decode(model, "h100-sxm", batch=batch, context=context, mode=mode).time_s
        assert e.time_s == pytest.approx(expected, rel=1e-9)
        assert e.mode == mode


@pytest.mark.parametrize("chip, tp", [("a100-sxm", 1), ("a100-sxm", 8), ("mi300x", 8), ("wse-3", 1)])
def test_a_calibration_with_a_hard_maximum_explains_to_the_same_number(chip, tp):
    """Calibrations fitted without a linear sweep keep the knee a hard maximum (n = inf); the
    formula must then use max(a, b), not (a^n + b^n)^(1/n) evaluated at n = oo (which gave 161 s
    for a 3 ms step on 8 A100s)."""
    e = explain("decode", "llama-2-7b", chip, batch=4, length=2048, mode="calibrated", tp=tp)
    expected = roofline.decode("llama-2-7b", chip, batch=4, context=2048, mode="calibrated", tp=tp).time_s
    assert e.time_s == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("model", ["llama-3.1-8b", "gemma-3-27b", "deepseek-v3.2"])
def test_prefill_expression_equals_api(model):
    e = explain("prefill", model, "h100-sxm", batch=2, length=3000)
    assert e.time_s == pytest.approx(roofline.prefill(model, "h100-sxm", prompt=3000, batch=2).time_s, rel=1e-9)


def test_expression_is_in_the_documented_symbols():
    e = explain("decode", "llama-3.1-8b", "h100-sxm", batch=8, length=2048, mode="calibrated")
    names = {str(s) for s in sympy.sympify(e.step_expression).free_symbols}
    assert {"B", "C", "BW", "P_bf16", "L", "t_layer", "n"} <= names
    values = {row["symbol"]: row["value"] for row in e.symbols}
    assert values["B"] == 8 and values["C"] == 2048 and values["L"] == 32
    assert values["BW"] == pytest.approx(roofline.load_hardware("h100-sxm").calibration.bandwidth)


def test_printed_expression_reads_back():
    """The printed expression, parsed by sympy and given the printed values, is the step time."""
    e = explain("decode", "gpt-oss-120b", "h100-sxm", batch=32, length=10000, mode="calibrated")
    expr = sympy.sympify(e.step_expression)
    values = {sympy.Symbol(row["symbol"]): row["value"] for row in e.symbols}
    assert float(expr.subs(values).evalf(30)) == pytest.approx(e.time_s, rel=1e-9)


def test_terms_bracket_the_step_time():
    """Per-operator maxima lie between max(sum memory, sum compute) and their sum (plus fixed costs)."""
    e = explain("decode", "deepseek-v3", "h100-sxm", batch=64, length=4096, mode="ideal")
    t = {row["term"]: row["value_s"] for row in e.terms}
    memory = t["weights streaming"] + t["KV cache read/write"] + t["activations"]
    assert max(memory, t["compute"]) + t["fixed costs"] <= e.time_s * (1 + 1e-12)
    assert e.time_s <= (memory + t["compute"] + t["fixed costs"]) * (1 + 1e-12)


def test_terms_split_weights_from_kv():
    """At batch 1 the weights term is the weight bytes a step reads over BW; KV grows with C, weights do not."""
    short = {r["term"]: r["value_s"] for r in explain("decode", "llama-3.1-8b", "h100-sxm", length=1024,
                                                       mode="ideal").terms}
    long = {r["term"]: r["value_s"] for r in explain("decode", "llama-3.1-8b", "h100-sxm", length=8192,
                                                      mode="ideal").terms}
    assert long["weights streaming"] == pytest.approx(short["weights streaming"])
    # KV read: 2 x 8 x 128 x 2 B per token per layer, 32 layers, C + 1 tokens read and one written
    assert long["KV cache read/write"] - short["KV cache read/write"] == pytest.approx(
        (8192 - 1024) * 131072 / 3.35e12)


def test_general_formula_has_generic_symbols_and_a_legend():
    g = general("decode")
    names = {str(s) for s in sympy.sympify(g.step_expression).free_symbols}
    assert {"B", "C", "BW", "P", "L", "h", "H", "H_kv", "d", "d_ff", "V", "b_w", "b_kv", "b_a"} <= names
    legend = {row["symbol"] for row in g.symbols}
    assert names <= legend
    assert g.time_s is None


def test_general_kv_term_is_the_textbook_formula():
    """scaling-book 'inference': KV cache = 2 x bytes x kv_heads x head_dim x layers x tokens."""
    g = general("decode")
    kv = sympy.sympify(next(t["expression"] for t in g.terms if t["term"].startswith("KV")))
    B, C, L, H_kv, d, b_kv, BW = sympy.symbols("B C L H_kv d b_kv BW")   # as sympify reads them
    # read C + 1 cached tokens and write one: 2 H_kv d b_kv L (C + 2) per sequence
    assert sympy.simplify(kv - 2 * H_kv * d * b_kv * L * B * (C + 2) / BW) == 0


def test_cli_explain_with_numbers():
    result = CliRunner().invoke(cli, ["explain", "decode", "--model", "llama-3.1-8b", "--hardware", "h100-sxm",
                                      "--batch", "4", "--context", "2048"])
    assert result.exit_code == 0, result.output
    expected = roofline.decode("llama-3.1-8b", "h100-sxm", batch=4, context=2048).time_s
    assert f"t_step = {expected * 1e3:.6g} ms" in result.output
    assert "weights streaming" in result.output and "t_layer" in result.output


def test_cli_explain_json_and_general():
    runner = CliRunner()
    result = runner.invoke(cli, ["explain", "prefill", "-m", "gemma-3-27b", "-c", "h100-sxm", "-p", "2048",
                                 "--format", "json"])
    assert result.exit_code == 0
    import json
    data = json.loads(result.output)
    assert data["time_s"] == pytest.approx(roofline.prefill("gemma-3-27b", "h100-sxm", prompt=2048).time_s, rel=1e-9)
    general_out = runner.invoke(cli, ["explain", "decode"])
    assert general_out.exit_code == 0 and "H_kv" in general_out.output and "meaning" in general_out.output


@pytest.mark.parametrize("args, message", [
    (["explain", "decode", "--model", "llama-3.1-8b"], "both --model and --hardware"),
    (["explain", "decode", "--batch", "4"], "--batch: needs --model"),
    (["explain", "decode", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--prompt", "5"], "--prompt is for"),
    (["explain", "prefill", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--context", "5"], "--context is for"),
    (["explain", "decode", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--batch", "0"], "batch must be a whole number"),
    (["explain", "decode", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--kv-dtype", "fp7"], "unknown kv-cache dtype"),
])
def test_cli_explain_bad_input(args, message):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
