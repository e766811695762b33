"""Monotonicity and bounds of the decode and prefill times (hypothesis), over five model families.

A roofline time is a sum of non-decreasing functions of bytes and FLOPs (the smooth maximum is
non-decreasing in both arguments), and bytes and FLOPs never fall when batch, context, prompt or
layers grow; so time never falls either. Comparisons allow 1e-12 relative for float64 rounding of
a sum of ~100 terms (~1e-14); any physical term is ~1e-6 of a step or more.
"""
import dataclasses

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import roofline
from roofline.hardware import load_hardware

FAMILIES = ["llama-3.1-8b",     # dense GQA
            "deepseek-v3",      # MLA, MoE with shared experts and dense-first layers
            "gemma-3-27b",      # sliding-window layers (5 local : 1 global)
            "deepseek-v3.2",    # sparse top-k attention with an indexer
            "gpt-oss-120b"]     # MXFP4 experts, sinks, alternating windowed layers
MODES = ["ideal", "calibrated"]
ROUNDING = 1e-12
EXAMPLES = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def log_uniform(low, high):
    """Whole numbers spread evenly over decades (plain integers cluster at the small end)."""
    return st.floats(0.0, 1.0).map(lambda u: max(low, min(high, round(low * (high / low) ** u))))


batches = log_uniform(1, 2048)
contexts = log_uniform(1, 131072)
families = st.sampled_from(FAMILIES)
modes = st.sampled_from(MODES)


def step(model, batch, context, mode, hardware="h100-sxm", **kwargs):
    return roofline.decode(model, hardware, batch=batch, context=context, mode=mode, **kwargs).time_s


def no_faster(later, earlier):
    return later >= earlier * (1 - ROUNDING)


@EXAMPLES
@given(families, modes, batches, log_uniform(1, 2048), contexts)
def test_time_never_falls_with_batch(model, mode, batch, more, context):
    assert no_faster(step(model, batch + more, context, mode), step(model, batch, context, mode))


@EXAMPLES
@given(families, modes, batches, contexts, log_uniform(1, 131072))
def test_time_never_falls_with_context(model, mode, batch, context, more):
    assert no_faster(step(model, batch, context + more, mode), step(model, batch, context, mode))


@EXAMPLES
@given(families, modes, st.integers(1, 80), st.integers(1, 8), batches, contexts)
def test_time_never_falls_with_layers(model, mode, layers, more, batch, context):
    fewer = step(model, batch, context, mode, overrides={"num_layers": str(layers)})
    assert no_faster(step(model, batch, context, mode, overrides={"num_layers": str(layers + more)}), fewer)


def scaled(hardware, bandwidth=1.0, flops=1.0):
    """The chip with its bandwidth and FLOP/s (datasheet and calibrated alike) multiplied."""
    tier = dataclasses.replace(hardware.memory[0], bandwidth=hardware.memory[0].bandwidth * bandwidth)
    cal = hardware.calibration
    if cal is not None:
        cal = dataclasses.replace(cal, bandwidth=cal.bandwidth * bandwidth,
                                  flops={d: f * flops for d, f in cal.flops.items()})
    return dataclasses.replace(hardware, memory=(tier,) + hardware.memory[1:], calibration=cal,
                               peak_flops={d: f * flops for d, f in hardware.peak_flops.items()})


@EXAMPLES
@given(families, modes, st.floats(0.05, 0.99), batches, contexts)
def test_time_never_falls_when_bandwidth_falls(model, mode, factor, batch, context):
    h100 = load_hardware("h100-sxm")
    assert no_faster(step(model, batch, context, mode, scaled(h100, bandwidth=factor)),
                     step(model, batch, context, mode, h100))


@EXAMPLES
@given(families, modes, st.floats(0.05, 0.99), batches, contexts)
def test_time_never_falls_when_peak_flops_fall(model, mode, factor, batch, context):
    h100 = load_hardware("h100-sxm")
    assert no_faster(step(model, batch, context, mode, scaled(h100, flops=factor)),
                     step(model, batch, context, mode, h100))


@EXAMPLES
@given(families, batches, contexts, st.sampled_from([None, "fp8", "int4-g128"]))
def test_ideal_is_never_slower_than_calibrated(model, batch, context, weights):
    """Datasheet peaks, a hard max and no fixed costs bound the calibrated time from below."""
    ideal = step(model, batch, context, "ideal", weights_dtype=weights)
    assert ideal <= step(model, batch, context, "calibrated", weights_dtype=weights) * (1 + ROUNDING)


@EXAMPLES
@given(families, modes, st.integers(1, 8), log_uniform(1, 16384), log_uniform(1, 16384))
def test_prefill_time_never_falls_with_prompt(model, mode, batch, prompt, more):
    shorter = roofline.prefill(model, "h100-sxm", prompt=prompt, batch=batch, mode=mode).time_s
    assert no_faster(roofline.prefill(model, "h100-sxm", prompt=prompt + more, batch=batch, mode=mode).time_s,
                     shorter)


@EXAMPLES
@given(families, modes, batches, log_uniform(1, 2048), contexts)
def test_aggregate_tokens_per_s_never_falls_with_batch(model, mode, batch, more, context):
    """t(B) / B is non-increasing: each operator's time per sequence is smax(F/P, W/(B BW) + A/BW)
    (the smooth max is homogeneous), and the expected distinct experts over B is concave in B."""
    def rate(b):
        return roofline.decode(model, "h100-sxm", batch=b, context=context, mode=mode).tokens_per_s
    assert no_faster(rate(batch + more), rate(batch))
