"""The what-if app: its controls ask roofline the question a user sets, and the table and the chart
follow; a question roofline refuses shows its reason and keeps the last answer."""
import matplotlib
import pytest

import roofline

matplotlib.use("Agg")
pytest.importorskip("ipywidgets")

from roofline.whatif import CUSTOM, WhatIf  # noqa: E402


@pytest.fixture(scope="module")
def app():
    return WhatIf(model="llama-3.1-8b", chip="h100-sxm", batch=1, context=1024)


def test_it_starts_with_roofline_s_own_answer(app):
    assert app.result.time_s == roofline.decode("llama-3.1-8b", "h100-sxm", batch=1, context=1024).time_s
    assert "16.06 GB" in app.table.value and "tok/s" in app.table.value  # weights of Llama-3.1-8B in bf16
    ax = app.figure.axes[0]
    assert len(ax.collections[0].get_offsets()) > 0 and "h100-sxm" in ax.get_title()


def test_every_control_changes_the_question(app):
    app.controls["batch"].value = 64
    app.controls["context"].value = 8192
    app.controls["dtype"].value = "fp8"
    r = app.result
    assert (r.batch, r.context, r.dtypes["weights"]) == (64, 8192, "fp8")
    assert r.time_s == pytest.approx(roofline.decode("llama-3.1-8b", "h100-sxm", batch=64, context=8192,
                                                     weights_dtype="fp8").time_s, rel=1e-12)
    app.controls["phase"].value = "prefill"
    assert app.result.phase == "prefill" and app.result.context == 8192
    assert "time to first token" in app.table.value
    app.controls["phase"].value = "decode"
    app.controls["dtype"].value = "model's own"
    app.controls["batch"].value = 1


def test_custom_chip_follows_its_sliders(app):
    app.controls["chip"].value = CUSTOM
    assert app.result.hardware == "custom" and app.result.mode == "ideal"  # no calibration for a made-up chip
    app.controls["bandwidth"].value = 4.0
    slow = app.result.time_s
    app.controls["bandwidth"].value = 8.0
    # ideal decode at batch 1 is memory-bound in every operator: twice the bandwidth, half the time
    assert slow / app.result.time_s == pytest.approx(2, rel=1e-6)
    app.controls["capacity"].value = 10.0
    assert app.result.fits is False and app.result.capacity_bytes == pytest.approx(10e9, rel=1e-6)
    app.controls["chip"].value = "h100-sxm"
    assert app.controls["bandwidth"].layout.display == "none"


def test_layouts_and_refusals(app):
    app.controls["chips"].value = 8
    app.controls["layout"].value = "pipeline"
    assert (app.result.pp, app.result.tp) == (8, 1) and app.error is None
    app.controls["chips"].value = 64   # 64 pipeline stages of a 32-layer model: refused
    assert app.error and "color:#b00" in app.message.value and app.result.pp == 8
    app.controls["chips"].value = 1
    app.controls["layout"].value = "roofline picks"
    assert app.error is None and app.result.chips == 1
