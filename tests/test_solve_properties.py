"""Properties every solver answer holds (issue 9): fed back through roofline.decode on its own
layout it meets its target and fits; one step less (one chip fewer, one sequence more, one token
more) misses on every layout the question allows. Small models and few examples keep it fast."""

from hypothesis import given, settings, strategies as st

import roofline
from roofline import solve
from roofline.parallel import candidate_layouts

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
    assert answer.feasible
    step = _decode("llama-3.1-8b", answer.result)
    assert _meets(step, per_user)
    replicas = answer.result["replicas"]
    assert replicas * step.tokens_per_s >= aggregate
    assert (replicas - 1) * step.tokens_per_s < aggregate          # no replica more than needed
    assert answer.answer == replicas * step.chips
