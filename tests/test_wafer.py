"""A wafer's mesh crossings (roofline.wafer): each GEMV phase of a layer pays sqrt(its share of the chip's
memory) of a crossing of the whole core mesh. Reference values are hand arithmetic from the model specs."""
import math

import pytest
from hypothesis import given, settings, strategies as st

from roofline.hardware import load_hardware
from roofline.models import load_model
from roofline.wafer import layer_phases, mesh_span
from roofline.transfer import transfer


def test_llama_8b_on_one_wafer_by_hand():
    # Llama 3.1 8B bf16 on one WSE-3 (44 GB): per layer QKV 4096 x (4096 + 2 x 1024) x 2 B = 50.33 MB,
    # O 4096 x 4096 x 2 B = 33.55 MB, gate+up 2 x 4096 x 14336 x 2 B = 234.9 MB, down 117.4 MB; the LM head
    # 128256 x 4096 x 2 B = 1.051 GB
    model, chip = load_model("llama-3.1-8b"), load_hardware("wse-3")
    phases = [50.33e6, 33.55e6, 234.9e6, 117.4e6]
    assert layer_phases(model, False) == pytest.approx(phases, rel=1e-3)
    by_hand = 32 * sum(math.sqrt(q / 44e9) for q in phases) + math.sqrt(1.0507e9 / 44e9)
    assert by_hand == pytest.approx(6.112, rel=1e-3)
    assert mesh_span(model, chip) == pytest.approx(by_hand, rel=1e-3)


def test_moe_phases_span_every_expert_and_mla_has_five_attention_gemvs():
    # Kimi K2 (fp8): an MoE layer's router, then gate+up and down over all 384 experts and the shared one
    # (a token's 8 experts sit somewhere in the block holding them all); MLA decode: q_a with kv_a, q_b,
    # the key and value halves of kv_b, the output projection
    model = load_model("kimi-k2")
    moe = layer_phases(model, True)
    assert len(moe) == 5 + 3
    experts = 384 * 3 * 7168 * 2048 * 1 + 3 * 7168 * 2048 * 1     # routed + shared, 1 B each
    assert moe[-2] + moe[-1] == pytest.approx(experts, rel=1e-3)
    assert moe[-3] == pytest.approx(384 * 7168, rel=1e-3)         # router


def test_chips_that_are_not_wafers_cross_no_mesh():
    assert mesh_span(load_model("llama-3.1-8b"), load_hardware("h100-sxm")) == 0.0


@settings(max_examples=20, deadline=None)
@given(tp=st.sampled_from([1, 2, 4, 8]), capacity_scale=st.floats(0.5, 4.0))
def test_span_shrinks_with_tensor_parallelism_and_capacity(tp, capacity_scale):
    """Splitting each matrix over tp wafers shrinks every block: the span falls as 1/sqrt(tp); a chip with
    more memory per core holds a matrix in a smaller share of its mesh."""
    from dataclasses import replace
    model, chip = load_model("llama-3.1-8b"), load_hardware("wse-3")
    one = mesh_span(model, chip)
    assert mesh_span(model, chip, tp=tp) == pytest.approx(one / math.sqrt(tp), rel=1e-9)
    bigger = replace(chip, memory=(replace(chip.memory[0], capacity=chip.mem_capacity * capacity_scale),)
                     + chip.memory[1:])
    assert mesh_span(model, bigger) == pytest.approx(one / math.sqrt(capacity_scale), rel=1e-9)


def test_a_wafers_mesh_crossing_does_not_carry_to_a_chip_that_is_not_one():
    wse3, groq = load_hardware("wse-3"), load_hardware("groq-lpu")
    assert wse3.calibration.mesh_traversal > 0
    moved = transfer(wse3.calibration, wse3, load_hardware("wse-2"))
    assert moved.mesh_traversal == wse3.calibration.mesh_traversal
    assert groq.calibration.mesh_traversal == 0


def test_a_wafer_prediction_counts_the_crossings():
    """GLM-4.7 on 19 WSE-3: the fixed costs of a token are 62.9 crossings x the fitted mesh_traversal plus
    the per-token cost (the per-layer cost is 0 on a wafer)."""
    from roofline import deployment
    from roofline.parallel import Layout
    from roofline.step import ceilings
    chip, model = load_hardware("wse-3"), load_model("glm-4.7")
    c = ceilings(chip, "calibrated")
    ev = deployment.evaluate("decode", model, chip, 1, 1024, Layout(1, 19, 1, 1), c)
    assert ev.split["overhead"] == pytest.approx(mesh_span(model, chip) * c.mesh_traversal + c.step_overhead)
    assert mesh_span(model, chip) == pytest.approx(62.9, rel=1e-3)


def test_a_floor_row_counts_only_when_the_prediction_is_below_it():
    """'>2500' (Llama 4 Maverick on WSE-3) and SambaNova's '250' and '4500' are floors: a prediction at or
    above one meets it (error 0); below, the error is the usual predicted / measured - 1."""
    from dataclasses import replace
    from roofline.measurements import read_measurements
    from roofline.validate import CheckedRow
    rows = read_measurements("data/validation/published/sram_systems.csv").rows
    floors = sorted((r.model, r.rate) for r in rows if r.floor)
    assert floors == [("deepseek-v3", 250.0), ("deepseek-v3", 4500.0), ("llama-4-maverick", 2500.0)]
    maverick = next(r for r in rows if r.floor and r.model == "llama-4-maverick")
    assert CheckedRow(maverick, "wse-3", "calibrated", 2500.0, 3000.0, 1e5, "tok/s").error == 0.0
    assert CheckedRow(maverick, "wse-3", "calibrated", 2500.0, 2000.0, 1e5, "tok/s").error == pytest.approx(-0.2)
    plain = replace(maverick, floor=False)
    assert CheckedRow(plain, "wse-3", "calibrated", 2500.0, 3000.0, 1e5, "tok/s").error == pytest.approx(0.2)
    # a time row's floor would be met from below: a shorter predicted time
    timed = replace(maverick, rate=None, seconds=1.0)
    assert timed.met_floor(-0.1) and not timed.met_floor(0.1)
