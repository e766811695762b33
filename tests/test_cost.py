"""Cost and energy per token: formulas against published worked examples, properties, API and CLI."""
import math

import numpy as np
import pytest
import sympy
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

import roofline
from roofline import cost
from roofline.cli import cli
from roofline.errors import RooflineError

HOUR = 3600.0
positive = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False, allow_infinity=False)


@pytest.mark.parametrize("usd_per_hour, tokens_per_s, published", [
    # GMI Cloud, "Cost per million tokens comes from one formula" (2026): 2.00 USD/GPU-hour at
    # 40 tok/s -> "about $13.90"; at 85 tok/s -> "$6.54" (https://www.gmicloud.ai/en/blog/
    # cost-per-million-tokens-formula, .../llm-inference-cost-per-million-tokens). Tolerance: the
    # figures are rounded to the cent (13.89 is printed as "about 13.90").
    (2.00, 40, 13.90),
    (2.00, 85, 6.54),
])
def test_usd_per_mtok_reproduces_published_examples(usd_per_hour, tokens_per_s, published):
    assert cost.usd_per_mtok(usd_per_hour / HOUR, 1, tokens_per_s) == pytest.approx(published, abs=0.015)


@pytest.mark.parametrize("node_w, tokens_per_s, joules, kwh_per_mtok", [
    # M. Clune, "Another look at per token energy costs" (clune.org): a 4xH100 node bracketed at
    # 1.5 kW and 3.0 kW; 41.8 tok/s -> 36 J and 72 J per token, 10 and 20 kWh per million tokens;
    # 53.9 tok/s -> 27.8 J and 55.6 J. Tolerance: the post rounds to 2-3 significant digits.
    (1500, 41.8, 36, 10),
    (3000, 41.8, 72, 20),
    (1500, 53.9, 27.8, 7.7),
    (3000, 53.9, 55.6, 15.4),
])
def test_energy_per_token_reproduces_published_examples(node_w, tokens_per_s, joules, kwh_per_mtok):
    assert cost.joules_per_token(node_w, 1, tokens_per_s) == pytest.approx(joules, rel=0.01)
    assert 1e6 / cost.tokens_per_kwh(node_w, 1, tokens_per_s) == pytest.approx(kwh_per_mtok, rel=0.02)


def test_several_megawatts_for_a_pipeline_of_wafers():
    """114 CS-3 systems at 23 kW each (the wse-3 spec) draw 2.6 MW; a PUE of 1.3 makes it 3.4 MW."""
    wafer = roofline.load_hardware("wse-3")
    assert cost.deployment_power(wafer.power, 114) == pytest.approx(2.622e6)
    assert cost.deployment_power(wafer.power, 114, pue=1.3) == pytest.approx(3.4086e6)


@given(price=positive, chips=st.integers(1, 4096), rate=positive, factor=st.floats(1.01, 100))
def test_cost_falls_as_throughput_rises_and_scales_with_chips(price, chips, rate, factor):
    base = cost.usd_per_mtok(price, chips, rate)
    assert cost.usd_per_mtok(price, chips, rate * factor) < base
    assert cost.usd_per_mtok(price, 2 * chips, rate) == pytest.approx(2 * base)


@given(power=positive, chips=st.integers(1, 4096), rate=positive, pue=st.floats(1, 3))
def test_joules_and_tokens_per_kwh_are_reciprocal(power, chips, rate, pue):
    joules = cost.joules_per_token(power, chips, rate, pue)
    assert joules * cost.tokens_per_kwh(power, chips, rate, pue) == pytest.approx(3.6e6)
    assert joules >= cost.joules_per_token(power, chips, rate)  # a PUE >= 1 never lowers energy


def test_formulas_take_arrays_and_symbols():
    rates = np.array([10.0, 100.0, 1000.0])
    assert np.allclose(cost.usd_per_mtok(1 / HOUR, 1, rates), [1e6 / 36000, 1e6 / 360000, 1e6 / 3600000])
    p, n, r = sympy.symbols("p n r", positive=True)
    assert sympy.simplify(cost.joules_per_token(p, n, r) - p * n / r) == 0


def test_pricing_reads_units_and_refuses_bad_input():
    h100 = roofline.load_hardware("h100-sxm")
    assert cost.pricing(h100).price == pytest.approx(4.25 / HOUR)   # hyperscaler basis, May 2026
    assert cost.pricing(h100, price="2 USD/hour", power="0.5 kW").power == pytest.approx(500)
    assert cost.pricing(h100, price="48 USD/day").price == pytest.approx(2 / HOUR)
    with pytest.raises(RooflineError, match="no unit"):
        cost.pricing(h100, price=2.0)
    with pytest.raises(RooflineError, match="not a power"):
        cost.pricing(h100, power="3 GB")
    with pytest.raises(RooflineError, match="positive"):
        cost.pricing(h100, price="-1 USD/hour")
    with pytest.raises(RooflineError, match="at least 1"):
        cost.pricing(h100, pue=0.9)


def test_decode_reports_cost_and_energy_from_the_spec():
    r = roofline.decode("llama-3.1-8b", "h100-sxm", batch=64, context=1024)
    # H100 spec: 4.25 USD/hour (midpoint of the hyperscaler on-demand range, May 2026); energy on the system basis: DGX H100 10.2 kW / 8 GPUs = 1275 W, not the
    # GPU's 700 W TDP (host CPUs, NICs, NVSwitches and fans draw for every token too)
    assert r.usd_per_mtok == pytest.approx(4.25 / HOUR / r.tokens_per_s * 1e6)
    assert r.joules_per_token == pytest.approx(10.2e3 / 8 / r.tokens_per_s)
    assert r.power_w == 1275
    assert r.quantity("usd_per_mtok").to("USD/token").magnitude == pytest.approx(r.usd_per_mtok / 1e6)
    assert r.quantity("tokens_per_kwh").to("token/J").magnitude == pytest.approx(1 / r.joules_per_token)


def test_batching_lowers_cost_per_token():
    one = roofline.decode("llama-3.1-8b", "h100-sxm", batch=1)
    many = roofline.decode("llama-3.1-8b", "h100-sxm", batch=128)
    assert many.usd_per_mtok < one.usd_per_mtok / 20


def test_missing_price_is_none_with_a_note():
    r = roofline.decode("llama-3.1-8b", "groq-lpu")
    assert r.usd_per_mtok is None and r.power_w is None and r.joules_per_token is None
    assert any("groq-lpu has no price" in n and "--price" in n for n in r.notes)
    # its 300 W is a chip figure, not a system share: energy is unknown on the common basis, and says so
    assert any("unknown: groq-lpu has no system power" in n and "--power" in n for n in r.notes)
    with pytest.raises(RooflineError, match="no value"):
        r.quantity("usd_per_mtok")
    given_price = roofline.decode("llama-3.1-8b", "groq-lpu", price="1 USD/hour")
    assert given_price.usd_per_mtok == pytest.approx(1 / HOUR / given_price.tokens_per_s * 1e6)


def test_max_usd_per_mtok_check():
    r = roofline.decode("llama-3.1-8b", "h100-sxm", batch=64)
    check = cost.check_max_usd_per_mtok(r, 2 * r.usd_per_mtok)
    assert check.met and check.margin == pytest.approx(0.5)
    missed = cost.check_max_usd_per_mtok(r, r.usd_per_mtok / 4)
    assert not missed.met and missed.margin == pytest.approx(-3)
    with pytest.raises(RooflineError, match="groq-lpu has no price"):
        cost.check_max_usd_per_mtok(roofline.decode("llama-3.1-8b", "groq-lpu"), 1.0)


def test_cli_price_power_and_pue_overrides():
    runner = CliRunner()
    base = runner.invoke(cli, ["decode", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--format", "json"])
    given_ = runner.invoke(cli, ["decode", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--format", "json",
                                 "--price", "8.5 USD/hour", "--power", "1 kW", "--pue", "1.5"])
    assert base.exit_code == 0 and given_.exit_code == 0
    import json
    a, b = json.loads(base.output), json.loads(given_.output)
    assert b["usd_per_mtok"] == pytest.approx(2 * a["usd_per_mtok"])
    assert b["power_w"] == pytest.approx(1500)
    assert b["joules_per_token"] == pytest.approx(a["joules_per_token"] * 1500 / 1275)


@pytest.mark.parametrize("args, message", [
    (["--price", "3"], "--price: '3' has no unit"),
    (["--price", "3 GB"], "--price: '3 GB' is not a price"),
    (["--power", "700"], "--power: '700' has no unit"),
    (["--pue", "0.8"], "at least 1"),
    (["--pue", "lots"], "--pue: expected a number"),
])
def test_cli_bad_cost_options(args, message):
    result = CliRunner().invoke(cli, ["decode", "-m", "llama-3.1-8b", "-c", "h100-sxm", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_prefill_reports_cost_of_prompt_tokens():
    r = roofline.prefill("llama-3.1-8b", "h100-sxm", prompt=2048, price="2 USD/hour")
    assert r.usd_per_mtok == pytest.approx(2 / HOUR / r.tokens_per_s * 1e6)
    assert math.isfinite(r.joules_per_token)


def test_every_chip_of_a_deployment_is_priced_and_powered():
    r = roofline.decode("llama-3.1-70b", "h100-sxm", batch=32, context=2048, tp=4, pp=2)
    assert r.chips == 8
    assert r.power_w == pytest.approx(10.2e3)          # one DGX H100: 8 x 1275 W
    assert r.usd_per_mtok == pytest.approx(8 * 4.25 / HOUR / r.tokens_per_s * 1e6)
    assert r.joules_per_token == pytest.approx(10.2e3 / r.tokens_per_s)
