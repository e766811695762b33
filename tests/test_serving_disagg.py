"""Disaggregated serving against the H100 serving rows: the rows' noise floor, the deployments the
InferenceX runs used, and the decode-slot queue that sets their TTFT."""
import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from roofline.serving.benchmarks import read_rows
from roofline.serving.repeats import best_single_value, noise_floor

CSV = Path(__file__).resolve().parents[1] / "data" / "validation" / "serving" / "h100_sxm_serving.csv"


@pytest.fixture(scope="module")
def rows():
    return read_rows(CSV)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.1, 100.0), min_size=1, max_size=7))
def test_best_single_value_minimises_the_summed_relative_error(values):
    def cost(p):
        return sum(abs(p / m - 1) for m in values)
    best = best_single_value(values)
    # the objective is piecewise linear with kinks at the m_i: its minimum is at one of them
    assert cost(best) <= min(cost(m) for m in values) + 1e-9


def test_noise_floor_of_the_serving_rows(rows):
    floor = noise_floor(rows, key=lambda r: f"{r['backend']} {r['mode']}")
    # aggregated: the few configurations listed twice were measured once (identical or within 1%)
    for name in ("vllm agg", "sglang agg", "trtllm agg"):
        assert floor[name]["ttft_spread"] < 1.01 and floor[name]["tpot_spread"] < 1.01
    sglang, trtllm = floor["sglang disagg"], floor["trtllm disagg"]
    # SGLang 1024/8192 at C = 2: TPOT 18.06 and 7.93 ms under one set of columns (ratio 2.28)
    assert sglang["tpot_spread"] == pytest.approx(18.06 / 7.93, rel=0.01)
    # TensorRT-LLM 1024/1024 at C = 6: TTFT 12.3 and 6.9 s, TPOT 14.0 and 7.7 ms
    assert trtllm["tpot_spread"] > 1.8 and trtllm["ttft_spread"] > 1.7
    assert sglang["differing"] == 10 and trtllm["differing"] == 13
    # most disaggregated rows are configurations measured once or copies of one measurement in two
    # source files: a perfect model's median error is 0, its mean 4-12%
    for group in (sglang, trtllm):
        assert group["tpot_floor"] == 0 and 0.03 < group["tpot_floor_mean"] < 0.15
