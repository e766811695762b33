"""The discrete-event simulation of continuous batching (serving.simulate) against the mean-value
model it must agree with in steady state, against the closed form of lock-step waves, and its
inputs."""
import pytest
from click.testing import CliRunner

from roofline.cli import cli
from roofline.parallel import Layout
from roofline.serving.api import setup
from roofline.serving.model import Pool, aggregated, workload
from roofline.serving.simulate import MAX_REQUESTS, simulate


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def both(engine, model="llama-3.1-8b", tp=1, requests=3000, **load_args):
    s = setup(model, "h100-sxm", engine)
    load = workload(s.model, **load_args)
    pool = Pool(Layout(tp))
    mva = aggregated(s.model, s.hardware, pool, s.ceiling, s.engine, load)
    des = simulate(s.model, s.hardware, pool, s.ceiling, s.engine, load, requests=requests)
    return mva, des


@pytest.mark.parametrize("engine", ["vllm", "trtllm", "sglang"])
@pytest.mark.parametrize("rate", [2.0, 8.0])
def test_in_steady_state_the_simulation_agrees_with_the_mean_value_model(engine, rate):
    """Poisson arrivals well below capacity (Llama-3.1-8B on one H100 serves about 20 requests/s of
    1024/256): the two methods share the step table, so they differ only in how they average.
    TPOT within 5% (the batch is Little's law in both); TTFT within 12%: the mean-value model
    prices the step in progress by its mean residual and a prompt's chunk by the mean arrivals
    beside it, where the simulation has the actual steps (SGLang's separate prefill steps
    differ most, 10%)."""
    mva, des = both(engine, isl=1024, osl=256, request_rate=rate)
    assert des.tpot_s == pytest.approx(mva.tpot_s, rel=0.05)
    assert des.ttft_s == pytest.approx(mva.ttft_s, rel=0.12)
    assert des.request_rate == pytest.approx(rate, rel=0.05)      # 2700 counted arrivals: 2% noise
    assert not des.saturated and not mva.saturated


def test_an_overloaded_open_loop_is_reported_saturated():
    mva, des = both("vllm", isl=1024, osl=256, request_rate=40.0)
    assert mva.saturated and des.saturated
    assert des.request_rate < 0.97 * 40


def test_lock_step_waves_come_out_of_the_simulation_as_the_closed_form_says():
    """SGLang runs prefill apart from decode; with fixed lengths its closed-loop clients move in
    waves, which serving.model.synchronized_waves prices in closed form. The simulation, which
    knows nothing of waves, must reproduce them: TTFT and TPOT within 2% (the closed form takes
    the wave's decode batch at its full size throughout)."""
    for isl, osl, clients in ((1024, 128, 16), (2048, 256, 64)):
        mva, des = both("sglang", isl=isl, osl=osl, concurrency=clients, requests=10)
        assert des.ttft_s == pytest.approx(mva.ttft_s, rel=0.02)
        assert des.tpot_s == pytest.approx(mva.tpot_s, rel=0.02)


def test_littles_law_holds_inside_the_simulation():
    """Mean sequences decoding = served rate x time each spends decoding (Little's law), measured
    on the simulated run itself: within 5% (the start and end of the run are not steady)."""
    _, des = both("vllm", isl=(800, 1200), osl=(200, 300), concurrency=32, requests=20)
    decoding = des.e2e_s - des.ttft_s
    assert des.running == pytest.approx(des.request_rate * decoding, rel=0.05)
    assert des.extra["ttft_p50_s"] <= des.extra["ttft_p90_s"]
    assert des.extra["simulated_requests"] == 32 * 20


def test_the_same_seed_gives_the_same_answer_and_another_seed_another_draw():
    s = setup("llama-3.1-8b", "h100-sxm", "vllm")
    load = workload(s.model, (512, 2048), (64, 512), request_rate=5.0)
    runs = [simulate(s.model, s.hardware, Pool(Layout(1)), s.ceiling, s.engine, load, requests=500, seed=seed)
            for seed in (0, 0, 1)]
    assert runs[0].ttft_s == runs[1].ttft_s and runs[0].e2e_s == runs[1].e2e_s
    assert runs[2].e2e_s != runs[0].e2e_s


def test_cli_simulate_adds_percentiles_and_the_method():
    result = run("serve", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--isl", "1024", "--osl", "128",
                 "--concurrency", "8", "--simulate", "--requests", "5")
    assert result.exit_code == 0, result.output
    assert "discrete-event simulation" in result.output and "ttft_p90_s" in result.output


@pytest.mark.parametrize("extra, words", [
    (["--requests", "0"], "requests"),
    (["--requests", str(MAX_REQUESTS)], "outside 1 to"),
    (["--prefill-tp", "1", "--decode-tp", "1"], "aggregated serving"),
])
def test_bad_simulation_requests_get_one_line_and_status_2(extra, words):
    result = run("serve", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--isl", "1024", "--osl", "128",
                 "--concurrency", "8", "--simulate", *extra)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in result.output


def test_validate_simulate_predicts_aggregated_rows_and_skips_disaggregated_ones(tmp_path):
    """`validate --simulate` on a serving CSV: aggregated rows by the simulation, each
    disaggregated row skipped with its reason; an SGLang fixed-length row comes out as the
    mean-value model's lock-step waves (see above) within 2%."""
    import csv
    import json

    from conftest import ROOT
    source = ROOT / "data" / "validation" / "serving" / "h100_sxm_serving.csv"
    with open(source, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows, fields = list(reader), reader.fieldnames
    sglang = next(r for r in rows if r["backend"] == "sglang" and r["mode"] == "agg" and "source_file=2026" not in
                  r["silicon_data_source"] and "db-dump" not in r["silicon_data_source"])
    disagg = next(r for r in rows if r["mode"] == "disagg" and "silicon_concurrency" in r["silicon_data_source"])
    path = tmp_path / "rows.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows([sglang, disagg])
    simulated = json.loads(run("validate", "-i", path, "--simulate", "--format", "json").output)
    plain = json.loads(run("validate", "-i", path, "--format", "json").output)
    assert [s["id"] for s in simulated["skipped"]] == [disagg["id"]]
    assert "aggregated serving" in simulated["skipped"][0]["reason"]
    (row,) = simulated["rows"]
    expected = next(r for r in plain["rows"] if r["id"] == sglang["id"])
    assert row["ttft_s"] == pytest.approx(expected["ttft_s"], rel=0.02)
    assert row["tpot_s"] == pytest.approx(expected["tpot_s"], rel=0.02)


def test_validate_simulate_on_a_file_of_step_rows_is_refused():
    from conftest import ROOT
    result = run("validate", "-i", ROOT / "data" / "validation" / "published" / "a100_gpt-fast_lmdeploy.csv",
                 "--simulate")
    assert result.exit_code == 2 and "serving CSV" in result.output
