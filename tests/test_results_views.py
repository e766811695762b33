"""Results in a notebook: HTML tables, pandas DataFrames, pint quantities."""
import pandas as pd
import pytest

import roofline
from roofline import speculative
from roofline.results import frame


@pytest.fixture(scope="module")
def result():
    return roofline.decode("llama-3.1-8b", "h100-sxm", batch=32, context=2048)


def test_html_table(result):
    html = result._repr_html_()
    # the CLI's sections: labels people read, numbers with units (field names are in to_dict and to_frame)
    assert html.startswith("<table>") and "tokens/s per user" in html and "per million tokens" in html
    assert "tok/s" in html and "USD/Mtok" in html


def test_one_row_frame(result):
    table = result.to_frame()
    assert table.shape[0] == 1
    assert table.loc[0, "tokens_per_s"] == pytest.approx(result.tokens_per_s)
    assert "operators" not in table.columns


def test_frame_of_several_results():
    results = [roofline.decode("llama-3.1-8b", "h100-sxm", batch=b) for b in (1, 8, 64)]
    table = frame(results)
    assert list(table["batch"]) == [1, 8, 64]
    assert table["tokens_per_s"].is_monotonic_increasing


def test_breakdown_frame_sums_to_the_step(result):
    table = result.breakdown_frame()
    assert isinstance(table, pd.DataFrame)
    assert {"name", "flops", "bytes", "intensity", "time_s", "bound", "share"} <= set(table.columns)
    # operators plus fixed costs make up the step
    assert table["time_s"].sum() + result.overhead_time_s == pytest.approx(result.time_s)
    assert table.loc[table["name"] == "attention", "bound"].iloc[0] == "memory"


def test_quantities_carry_units(result):
    assert result.quantity("step_time_s").to("ms").magnitude == pytest.approx(result.time_s * 1e3)
    assert result.quantity("kv_cache_bytes").to("GiB").magnitude == pytest.approx(result.kv_cache_bytes / 2 ** 30)
    assert result.quantity("tokens_per_s_per_user").to("token/min").magnitude == pytest.approx(
        60 * result.tokens_per_s_per_user)
    assert result.quantity("power_w").to("kW").magnitude == pytest.approx(1.275)   # DGX H100 10.2 kW / 8


def test_speculative_result_views():
    r = speculative.decode("llama-3.1-70b", "h100-sxm", "llama-3.1-8b", 4, 0.8, weights_dtype="fp8")
    assert "speedup" in r._repr_html_()
    assert r.to_frame().loc[0, "speedup"] == pytest.approx(r.speedup)
    assert r.to_dict()["base"]["model"] == "llama-3.1-70b"
    assert r.quantity("round_time_s").to("ms").magnitude == pytest.approx(r.round_time_s * 1e3)
