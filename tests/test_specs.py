"""The spec layer: every shipped spec loads, parameter counts agree with the stated figures, units.

The parameter-count rule (one tolerance, an explicit list of what each stated figure includes)
is in stated_params.py, with its justification.
"""
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roofline.errors import RooflineError
from roofline.hardware import load_hardware, load_link
from roofline.models import load_model
from roofline.params import count_params
from roofline.units import Q_, format_si, to_si
from stated_params import (STATED_INCLUDES, TOLERANCE, expected_active, expected_total,
                           relative_error)

from conftest import CHIPS, LINKS, MODELS

pytestmark = pytest.mark.usefixtures("no_user_specs")

#: the ids issue 2 asks for
REQUIRED_CHIPS = ("a100-sxm", "h100-sxm", "h100-pcie", "h200", "b200", "gb200", "mi300x", "mi325x", "mi355x",
                  "gaudi3", "tpu-v5e", "tpu-v5p", "tpu-v6e", "tpu-v7", "wse-2", "wse-3", "groq-lpu", "sn40l",
                  "rtx-4090", "rtx-5090", "m2-ultra", "m4-max", "b300", "gb300")
REQUIRED_MODELS = ("llama-2-7b", "llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "llama-4-scout",
                   "llama-4-maverick", "mistral-7b", "mixtral-8x7b", "qwen3-32b", "qwen3-235b-a22b",
                   "qwen3-coder-480b", "deepseek-v3", "deepseek-v3.2", "glm-4.5", "glm-4.6", "glm-4.7",
                   "glm-4.5-air", "kimi-k2", "gpt-oss-20b", "gpt-oss-120b", "gemma-3-27b",
                   # issue 11: the models of the serving benchmarks
                   "minimax-m2.5", "qwen3.5-397b-a17b", "kimi-k2.5", "glm-5")


def test_required_ids_are_shipped():
    assert set(REQUIRED_CHIPS) <= set(CHIPS)
    assert set(REQUIRED_MODELS) <= set(MODELS)


@pytest.mark.parametrize("chip_id", CHIPS)
def test_chip_loads(chip_id):
    chip = load_hardware(chip_id)
    assert chip.id == chip_id
    assert chip.mem_capacity > 0 and chip.mem_bandwidth > 0 and chip.peak_flops
    assert all(fact.source for fact in chip.facts)


@pytest.mark.parametrize("link_id", LINKS)
def test_link_loads(link_id):
    link = load_link(link_id)
    assert link.id == link_id and link.bandwidth > 0 and link.latency >= 0


@pytest.mark.parametrize("model_id", MODELS)
def test_model_loads(model_id):
    model = load_model(model_id)
    assert model.id == model_id and model.params_total > 0
    assert all(fact.source for fact in model.facts)


def test_stated_includes_names_shipped_models():
    """The list of what stated figures include must not name models that do not exist."""
    assert set(STATED_INCLUDES) <= set(MODELS)


@pytest.mark.parametrize("model_id", MODELS)
def test_total_params_agree_with_stated(model_id):
    model = load_model(model_id)
    error = relative_error(expected_total(model), model.params_total)
    assert abs(error) <= TOLERANCE, f"{model_id}: computed {expected_total(model):.4g} vs stated " \
                                    f"{model.params_total:.4g} ({error:+.2%})"


@pytest.mark.parametrize("model_id", [m for m in MODELS if load_model(m).params_active])
def test_active_params_agree_with_stated(model_id):
    model = load_model(model_id)
    error = relative_error(expected_active(model), model.params_active)
    assert abs(error) <= TOLERANCE, f"{model_id}: computed {expected_active(model):.4g} vs stated " \
                                    f"{model.params_active:.4g} ({error:+.2%})"


@pytest.mark.parametrize("model_id", MODELS)
def test_a_wrong_ffn_width_fails_the_param_check(model_id):
    """The tolerance is tight enough to catch one architecture field 10 % off."""
    model = load_model(model_id)
    field, value = ("moe.expert_intermediate_size", model.moe.expert_intermediate_size) if model.moe \
        else ("intermediate_size", model.intermediate_size)
    wrong = load_model(model_id, overrides={field: str(int(value * 0.9))})
    assert abs(relative_error(expected_total(wrong), model.params_total)) > TOLERANCE


def test_mtp_params_agree_with_stated():
    """DeepSeek-V3's MTP module: "11.5B unique parameters" (README_WEIGHTS); same rule as above."""
    counts = count_params(load_model("deepseek-v3"))
    assert abs(relative_error(counts.mtp, 11.5e9)) <= TOLERANCE


# -- units ------------------------------------------------------------------------------------

def test_gb_is_decimal_and_gib_binary():
    assert to_si("80 GB", "bytes") == 80e9
    assert to_si("80 GiB", "bytes") == 80 * 2 ** 30
    # the 7.4 % peers have shipped by mixing the two
    assert to_si("80 GiB", "bytes") / to_si("80 GB", "bytes") == pytest.approx(1.0737, abs=1e-4)


def test_bandwidth_and_flops_units():
    assert to_si("3.35 TB/s", "bandwidth") == pytest.approx(3.35e12)
    assert to_si("989.4 TFLOP/s", "flops") == pytest.approx(989.4e12)
    assert to_si("1979 TOP/s", "flops") == pytest.approx(1.979e15)  # OP is FLOP for integer ops
    assert to_si("2 us", "time") == pytest.approx(2e-6)


def test_flop_and_token_are_units():
    per_token = Q_("16 GFLOP/token")
    assert per_token.to("FLOP/token").magnitude == pytest.approx(16e9)
    rate = (per_token * Q_("100 token/s")).to("TFLOP/s")
    assert rate.magnitude == pytest.approx(1.6)


def test_price_per_hour_to_per_second():
    assert to_si("3.6 USD/hour", "price") == pytest.approx(0.001)
    assert to_si("3.6 USD/h", "price") == pytest.approx(0.001)


@pytest.mark.parametrize("text, dimension", [("3.35 TB", "bandwidth"), ("80 GB/s", "bytes"), ("700 W", "flops"),
                                             ("3.99 USD", "price")])
def test_wrong_dimension_is_an_error(text, dimension):
    with pytest.raises(RooflineError, match=f"is not a {dimension}"):
        to_si(text, dimension, where="f.yaml: x")


@pytest.mark.parametrize("value", [3.35, "3.35"])
def test_number_without_unit_is_an_error(value):
    with pytest.raises(RooflineError, match="has no unit"):
        to_si(value, "bandwidth")


def test_nan_is_an_error():
    with pytest.raises(RooflineError, match="not a finite number"):
        to_si("nan GB", "bytes")
    with pytest.raises(RooflineError, match="not a finite number"):
        to_si(math.nan, "count")


@given(st.floats(min_value=1e-3, max_value=1e6, allow_nan=False))
def test_prefixes_scale_exactly(x):
    assert to_si(f"{x!r} TB/s", "bandwidth") == pytest.approx(x * 1e12, rel=1e-12)
    assert to_si(f"{x!r} TiB", "bytes") / to_si(f"{x!r} TB", "bytes") == pytest.approx(2 ** 40 / 1e12)


@given(st.floats(min_value=1e-9, max_value=1e20, allow_nan=False))
def test_format_si_reads_back(x):
    """What `list`/`show` print converts back to the value within the 3 digits shown."""
    text = format_si(x, "B/s")
    assert to_si(text, "bandwidth") == pytest.approx(x, rel=5.01e-3)


def test_format_si_wafer_bandwidth():
    assert format_si(2.1e16, "B/s") == "21 PB/s"
    assert format_si(3.35e12, "B/s") == "3.35 TB/s"
