"""Properties every solver answer holds (issue 9): fed back through roofline.decode on its own
layout it meets its target and fits; one step less (one chip fewer, one sequence more, one token
more) misses on every layout the question allows. Small models and few examples keep it fast."""

from hypothesis import given, settings, strategies as st

import roofline
from roofline import solve
from roofline.parallel import candidate_layouts
from roofline.placement import decode_memory, fits, most_sequences
from roofline.solve import common

HARDWARE = "h100-sxm"


def _decode(model_id, result, **changes):
    """roofline.decode at a solver answer's batch, context and layout, with `changes` applied."""
    args = dict(batch=result["batch"], context=result["context"], tp=result["tp"], pp=result["pp"], ep=result["ep"],
                microbatches=result["microbatches"], mode="ideal")
    args.update(changes)
    return roofline.decode(model_id, HARDWARE, **args)


def _meets(step, per_user):
    return step.fits and (per_user is None or step.tokens_per_s_per_user >= per_user)


def _splits(model_id, chips, batch, max_tp="domain"):
    """Every layout of `chips` chips valid at `batch`, as decode keywords."""
    model, hardware = roofline.load_model(model_id), roofline.load_hardware(HARDWARE)
    try:
        layouts = candidate_layouts(model, hardware, chips, batch, max_tp=max_tp)
    except roofline.RooflineError:
        return []
    return [dict(tp=l.tp, pp=l.pp, ep=l.ep, microbatches=l.microbatches) for l in layouts]


@settings(max_examples=6, deadline=None)
@given(st.sampled_from(["llama-3.1-8b", "mixtral-8x7b"]), st.sampled_from([1, 2, 4, 8]), st.floats(5, 150),
       st.sampled_from([512, 4096]))
def test_solve_batch_answer_holds_and_one_more_sequence_does_not(model_id, chips, target, context):
    answer = solve.solve_batch(model_id, HARDWARE, target, context=context, chips=chips, mode="ideal")
    if not answer.feasible:
        for layout in _splits(model_id, chips, 1):
            assert not _meets(roofline.decode(model_id, HARDWARE, batch=1, context=context, mode="ideal", **layout),
                              target)
        return
    assert _meets(_decode(model_id, answer.result), target)
    batch = answer.answer + 1
    for layout in _splits(model_id, chips, batch):
        assert not _meets(roofline.decode(model_id, HARDWARE, batch=batch, context=context, mode="ideal", **layout),
                          target), layout


@settings(max_examples=6, deadline=None)
@given(st.sampled_from(["llama-3.1-8b", "mixtral-8x7b"]), st.sampled_from([1, 2, 8]), st.integers(1, 16),
       st.one_of(st.none(), st.floats(20, 200)))
def test_solve_context_answer_holds_and_one_more_token_does_not(model_id, chips, batch, target):
    answer = solve.solve_context(model_id, HARDWARE, batch=batch, chips=chips, mode="ideal",
                                 tokens_per_s_per_user=target)
    if not answer.feasible:
        return
    assert _meets(_decode(model_id, answer.result), target)
    context = answer.answer + 1
    for layout in _splits(model_id, chips, batch):
        assert not _meets(roofline.decode(model_id, HARDWARE, batch=batch, context=context, mode="ideal", **layout),
                          target), layout


@settings(max_examples=5, deadline=None)
@given(st.sampled_from(["llama-3.1-8b", "llama-3.1-70b"]), st.floats(20, 400), st.sampled_from([1, 8]))
def test_solve_chips_answer_holds_and_one_chip_fewer_does_not(model_id, target, batch):
    answer = solve.solve_chips(model_id, HARDWARE, tokens_per_s_per_user=target, batch=batch, mode="ideal",
                               max_chips=16)
    if answer.feasible:
        assert _meets(_decode(model_id, answer.result), target)
    for chips in range(1, answer.answer if answer.feasible else 17):
        for layout in _splits(model_id, chips, batch, max_tp=None):
            assert not _meets(roofline.decode(model_id, HARDWARE, batch=batch, context=1024, mode="ideal", **layout),
                              target), layout


@settings(max_examples=4, deadline=None)
@given(st.floats(1e4, 1e6), st.one_of(st.none(), st.floats(10, 60)))
def test_solve_chips_with_an_aggregate_target_meets_it(aggregate, per_user):
    answer = solve.solve_chips("llama-3.1-8b", HARDWARE, tokens_per_s_per_user=per_user, tokens_per_s=aggregate,
                               mode="ideal", max_chips=8)
    if not answer.feasible:         # more replicas than 8 chips allow
        assert answer.binding == "tokens_per_s" and "more than --max-chips 8" in answer.why[0]
        return
    step = _decode("llama-3.1-8b", answer.result)
    assert _meets(step, per_user)
    replicas = answer.result["replicas"]
    assert replicas * step.tokens_per_s >= aggregate
    assert (replicas - 1) * step.tokens_per_s < aggregate          # no replica more than needed
    assert answer.answer == replicas * step.chips


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 50), st.integers(0, 5000), st.floats(0.5, 3.0), st.floats(1e-4, 1.0), st.floats(0.01, 100))
def test_search_on_step_time_finds_the_last_batch_that_meets(low, span, power, slope, target):
    """The interpolating search (solve.common._last_meeting) returns what a scan of every integer
    returns, for step times t = t0 + slope n^power that curve either way."""
    high = low + span

    def speed(n):
        return 1 / (0.01 + slope * n ** power)

    expected = max((n for n in range(low, high + 1) if speed(n) >= target), default=None)
    assert common._last_meeting(low, high, speed, target) == expected


@settings(max_examples=10, deadline=None)
@given(st.sampled_from(["deepseek-v3", "qwen3-235b-a22b", "llama-3.1-70b"]), st.sampled_from([8, 16, 32]),
       st.integers(0, 50), st.sampled_from([512, 8192, 65536]))
def test_most_sequences_is_the_last_batch_that_fits(model_id, chips, pick, context):
    """placement.most_sequences (closed form from the affine memory) against bisection on fits."""
    model, hardware = roofline.load_model(model_id), roofline.load_hardware("h200")
    layouts = candidate_layouts(model, hardware, chips, None)
    layout = layouts[pick % len(layouts)]

    def holds(b):
        return fits(decode_memory(model, layout, b, context), hardware)

    expected = None
    if holds(layout.min_batch):
        low, high = layout.min_batch, 65536
        while low < high:
            mid = (low + high + 1) // 2
            low, high = (mid, high) if holds(mid) else (low, mid - 1)
        expected = low
    assert most_sequences(model, hardware, layout, context, 65536) == expected
