"""Charts: every plot kind writes its file from the command line, and its axes hold data with
labelled units; without matplotlib or pandas the error is one line naming the extra."""
import sys

import matplotlib
import pytest
from click.testing import CliRunner

import roofline
from roofline import plots
from roofline.cli import cli
from roofline.errors import RooflineError
from roofline.sweep import sweep

matplotlib.use("Agg")

MAGIC = {"png": b"\x89PNG", "svg": b"<?xml", "pdf": b"%PDF"}
CASES = {
    "roofline": ["-m", "llama-3.1-8b", "-c", "h100-sxm", "-b", "512"],
    "breakdown": ["-m", "llama-3.1-8b", "-c", "h100-sxm", "--phase", "prefill", "--context", "2k", "--tp", "2"],
    "sweep": ["-m", "llama-3.1-8b", "-c", "h100-sxm", "-b", "1,8,64", "--context", "1024"],
    "frontier": ["-m", "llama-3.1-8b", "-c", "h100-sxm", "-c", "h200", "-b", "1,16,256"],
    "kv": ["-m", "llama-3.1-8b", "-m", "mistral-7b", "-c", "h100-sxm"],
}


@pytest.mark.parametrize("kind, suffix", [("roofline", "png"), ("breakdown", "svg"), ("sweep", "pdf"),
                                          ("frontier", "png"), ("kv", "png")])
def test_plot_writes_its_file(tmp_path, kind, suffix):
    path = tmp_path / f"{kind}.{suffix}"
    result = CliRunner().invoke(cli, ["plot", kind, *CASES[kind], "--output", str(path)])
    assert result.exit_code == 0, result.output
    assert path.read_bytes().startswith(MAGIC[suffix])
    assert path.stat().st_size > 5000


def drawn(draw):
    figure, ax = plots.new_figure()
    draw(ax)
    return ax


def labelled(ax, categories_on_y=False):
    """Both axes name their unit in brackets (a categorical axis names what it lists)."""
    assert "[" in ax.get_xlabel(), ax.get_xlabel()
    assert ("[" in ax.get_ylabel()) or (categories_on_y and ax.get_ylabel()), ax.get_ylabel()
    return ax


def test_roofline_chart_places_the_operators_under_the_roofs():
    result = roofline.decode("llama-3.1-8b", "h100-sxm", batch=512, context=512)
    ax = labelled(drawn(lambda ax: plots.roofline_chart(result, ax=ax)))
    points = ax.collections[0].get_offsets()
    assert len(points) == sum(op.flops > 0 for op in result.operators)
    # no operator runs above the bf16 datasheet peak (989.4 TFLOP/s, NVIDIA's H100 SXM datasheet)
    assert points[:, 1].max() <= 989.4e12
    title = ax.get_title()
    assert "llama-3.1-8b" in title and "h100-sxm" in title and "calibrated mode" in title and "calibration" in title
    x0, x1 = ax.get_xlim()
    assert all(x0 <= text.xy[0] <= x1 for text in ax.texts)  # labels anchored inside the axes


def test_breakdown_chart_has_a_bar_per_operator_and_for_fixed_costs():
    result = roofline.decode("llama-3.1-8b", "h100-sxm")
    ax = labelled(drawn(lambda ax: plots.breakdown_chart(result, ax=ax)), categories_on_y=True)
    widths = [bar.get_width() for bar in ax.patches]
    assert len(widths) == len(result.operators) + 1  # one chip: fixed costs, no link time
    # the bars add up to the step time [ms]
    assert sum(widths) == pytest.approx(result.time_s * 1e3, rel=1e-9)


def test_sweep_chart_has_a_line_per_context():
    grid = sweep("llama-3.1-8b", "h100-sxm", batch=[1, 8, 64, 512], context=[1024, 8192])
    ax = labelled(drawn(lambda ax: plots.sweep_chart(grid, ax=ax)))
    assert len(ax.lines) == 2 and all(len(line.get_xdata()) == 4 for line in ax.lines)


def test_frontier_chart_explains_its_markers():
    ax = labelled(drawn(lambda ax: plots.frontier_chart("llama-3.1-8b", ["h100-sxm", "b200"], batches=[1, 64, 1024],
                                                        ax=ax)))
    assert len(ax.lines) == 2 and all(len(line.get_xdata()) == 3 for line in ax.lines)
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert {"batch fits in memory", "batch does not fit", "critical batch"} <= set(legend)


def test_kv_chart_keeps_equal_curves_apart():
    ax = labelled(drawn(lambda ax: plots.kv_chart(["llama-3.1-8b", "mistral-7b"], ax=ax)))
    llama, mistral = ax.lines[:2]
    # the same 128 kB per token below Mistral's 4096-token window: drawn with different dash patterns
    assert llama.get_linestyle() != mistral.get_linestyle()
    assert ax.get_title()


def test_a_bad_output_name_is_one_line_and_writes_nothing(tmp_path):
    result = CliRunner().invoke(cli, ["plot", "kv", "-m", "llama-3.1-8b", "-o", str(tmp_path / "x.txt")])
    assert result.exit_code == 2 and ".png, .svg or .pdf" in result.stderr
    assert not list(tmp_path.iterdir())


@pytest.fixture
def without(monkeypatch):
    def hide(*modules):
        for name in list(sys.modules):
            if name.split(".")[0] in modules:
                monkeypatch.delitem(sys.modules, name)
        for name in modules:
            monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError
    return hide


def test_without_matplotlib_plot_says_what_to_install(without, tmp_path):
    without("matplotlib")
    result = CliRunner().invoke(cli, ["plot", "roofline", *CASES["roofline"], "-o", str(tmp_path / "a.png")])
    assert result.exit_code == 2
    assert result.stderr.strip() == ("error: this needs matplotlib, which is not installed; install it with "
                                     "pip install 'roofline[notebooks]'")
    with pytest.raises(RooflineError, match=r"roofline\[notebooks\]"):
        plots.kv_chart(["llama-3.1-8b"])


def test_without_pandas_frames_say_what_to_install(without):
    result = roofline.decode("llama-3.1-8b", "h100-sxm")
    without("pandas")
    for call in (result.breakdown_frame, result.to_frame,
                 sweep("llama-3.1-8b", "h100-sxm", batch=[1], context=[1]).to_frame):
        with pytest.raises(RooflineError, match=r"needs pandas.*pip install 'roofline\[notebooks\]'"):
            call()
