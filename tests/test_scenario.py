"""One question, one evaluation path: every way of asking gives the number api.decode gives.

The step time of a Scenario is computed by deployment.ForwardPass.evaluate alone; a sweep (numpy
arrays), explain (sympy symbols) and speculative decoding evaluate the same pass. These tests hold
them equal on several chips too, where they used to refuse. 1e-9 relative: far above float64
rounding of ~100 terms, far below any physical term.
"""
import dataclasses

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import roofline
from roofline import scenario
from roofline.cli import cli
from roofline.errors import RooflineError
from roofline.explain import explain
from roofline.sweep import sweep


def test_sweep_over_batch_on_tp8_equals_decode():
    batch, context = [1, 8, 64], [1024, 8192]
    grid = sweep("llama-3.1-70b", "h100-sxm", batch=batch, context=context, tp=8)
    for b, c, t in zip(grid["batch"], grid["context"], grid["step_time_s"]):
        expected = roofline.decode("llama-3.1-70b", "h100-sxm", batch=int(b), context=int(c), tp=8).time_s
        assert t == pytest.approx(expected, rel=1e-9)


def test_sweep_with_chips_alone_chooses_each_points_layout():
    grid = sweep("deepseek-v3", "h200", batch=[8, 64], context=[2048], chips=8)
    for b, t in zip(grid["batch"], grid["step_time_s"]):
        assert t == pytest.approx(roofline.decode("deepseek-v3", "h200", batch=int(b), context=2048,
                                                  chips=8).time_s, rel=1e-9)


@pytest.mark.parametrize("model, layout", [("deepseek-v3", {"tp": 8}), ("llama-3.1-70b", {"tp": 4, "pp": 2}),
                                           ("qwen3-235b-a22b", {"tp": 2, "ep": 8})])
def test_explain_on_several_chips_equals_decode(model, layout):
    e = explain("decode", model, "h200", batch=16, length=4096, **layout)
    assert e.time_s == pytest.approx(roofline.decode(model, "h200", batch=16, context=4096, **layout).time_s,
                                     rel=1e-9)
    assert any(t["term"] == "links" and t["value_s"] > 0 for t in e.terms)


def test_cli_sweep_and_explain_on_several_chips():
    runner = CliRunner()
    out = runner.invoke(cli, ["sweep", "-m", "llama-3.1-70b", "-c", "h100-sxm", "--tp", "8", "--batch", "1:64:x4",
                              "--format", "csv"])
    assert out.exit_code == 0, out.output
    assert len(out.stdout.strip().splitlines()) == 1 + 4    # the mode note goes to stderr
    out = runner.invoke(cli, ["explain", "decode", "-m", "deepseek-v3", "-c", "h200", "--chips", "8"])
    assert out.exit_code == 0, out.output
    assert "links" in out.output


def test_scenario_is_immutable_and_checked_once():
    s = scenario.build("llama-3.1-8b", "h100-sxm", batch=4, context=2048)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.batch = 8
    assert s.mode == "calibrated" and s.chips == 1
    assert scenario.evaluate(s.with_point(batch=8)).cycle_time > scenario.evaluate(s).cycle_time
    with pytest.raises(RooflineError, match="batch must be a whole number"):
        s.with_point(batch=0)


def test_decode_takes_a_scenario():
    s = scenario.build("llama-3.1-8b", "h100-sxm", "prefill", batch=2, prompt=512)
    assert roofline.prefill(s).time_s == pytest.approx(roofline.prefill("llama-3.1-8b", "h100-sxm", prompt=512,
                                                                        batch=2).time_s)
    with pytest.raises(RooflineError, match="is a prefill"):
        roofline.decode(s)


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 512), context=st.integers(1, 131072), tp=st.sampled_from([1, 2, 4, 8]))
def test_grid_point_equals_scalar_question(batch, context, tp):
    """A point of a vectorised grid is the scalar question: no term treats arrays differently."""
    grid = scenario.build("llama-3.1-70b", "h100-sxm", batch=[batch, 1], context=[context, 1], tp=tp)
    times = np.asarray(scenario.evaluate(grid).cycle_time)
    scalar = scenario.evaluate(scenario.build("llama-3.1-70b", "h100-sxm", batch=batch, context=context, tp=tp))
    assert times[0] == pytest.approx(scalar.cycle_time, rel=1e-12)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(*[st.sampled_from([0.0, 1.0, 2.0, 3.5]) for _ in range(5)]), min_size=1, max_size=6))
def test_binding_of_arrays_is_binding_of_each_point(points):
    """What binds, on arrays, is the scalar verdict at each point (ties go to the earlier part)."""
    from roofline.binding import BOUNDS, binding
    columns = {key: np.array([p[i] for p in points]) for i, key in enumerate(BOUNDS)}
    labels = binding(columns)
    for j, point in enumerate(points):
        assert labels[j] == binding(dict(zip(BOUNDS, point)))


def test_api_scenario_takes_chip_what_ifs():
    """A chip field changes through the API as on the command line (--set hardware.FIELD): in ideal
    mode a memory-bound step scales with the bandwidth, 3.35 / 6 TB/s for an H100 made faster."""
    base = roofline.decode("llama-3.1-8b", "h100-sxm", mode="ideal")
    faster = roofline.decode("llama-3.1-8b", "h100-sxm", mode="ideal",
                             overrides={"hardware.memory_bandwidth": "6 TB/s"})
    assert faster.time_s == pytest.approx(base.time_s * 3.35 / 6, rel=1e-9)
    with pytest.raises(RooflineError, match="memory_bandwidth"):
        roofline.decode("llama-3.1-8b", "h100-sxm", overrides={"hardware.memory_bandwidth": "6 GB"})
