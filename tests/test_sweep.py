"""`roofline sweep`: a vectorised grid whose every point is what api.decode gives for it."""
import csv
import io
import json

import pytest
from click.testing import CliRunner

import roofline
from roofline.cli import cli
from roofline.cli.analysis_cmd import parse_values
from roofline.errors import RooflineError
from roofline.sweep import COLUMNS, sweep


@pytest.mark.parametrize("model", ["llama-3.1-8b", "deepseek-v3", "gemma-3-27b", "deepseek-v3.2", "gpt-oss-120b"])
@pytest.mark.parametrize("mode", ["ideal", "calibrated"])
def test_points_equal_api_decode(model, mode):
    """Same functions, same order of operations: equal to float64 rounding (1e-12 relative)."""
    grid = sweep(model, "h100-sxm", batch=[1, 7, 300], context=[1, 1000, 70000], weights_dtype=["bf16", "fp8"],
                 mode=mode)
    assert len(grid) == 18
    for row in grid.rows():
        point = dict(zip(COLUMNS, row))
        r = roofline.decode(model, "h100-sxm", batch=point["batch"], context=point["context"],
                            weights_dtype=point["dtype"], mode=mode)
        assert point["step_time_s"] == pytest.approx(r.time_s, rel=1e-12)
        assert point["tokens_per_s"] == pytest.approx(r.tokens_per_s, rel=1e-12)
        assert point["tokens_per_s_per_user"] == pytest.approx(r.tokens_per_s_per_user, rel=1e-12)
        assert point["kv_cache_bytes"] == pytest.approx(r.kv_cache_bytes, rel=1e-12)
        assert (point["bound"], point["fits"]) == (r.bound, r.fits)


def test_grid_order_and_frame():
    grid = sweep("llama-3.1-8b", "h100-sxm", batch=[1, 2], context=[10, 20, 30])
    assert grid["batch"].tolist() == [1, 1, 1, 2, 2, 2]
    assert grid["context"].tolist() == [10, 20, 30] * 2
    assert set(grid["dtype"]) == {"bf16"}
    pd = pytest.importorskip("pandas")
    frame = grid.to_frame()
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == list(COLUMNS) and len(frame) == 6


@pytest.mark.parametrize("batch, context, message", [
    ([0, 1], [10], "batch must be whole numbers of at least 1, got 0"),
    ([1.5], [10], "got 1.5"),
    ([1], [], "context must be one or more"),
    ([1], [-3], "got -3"),
])
def test_sweep_bad_input(batch, context, message):
    with pytest.raises(RooflineError, match=message):
        sweep("llama-3.1-8b", "h100-sxm", batch=batch, context=context)


def test_parse_values():
    assert parse_values("1,8,64,512", "batch") == [1, 8, 64, 512]
    assert parse_values("1:1024:x2", "batch") == [2 ** i for i in range(11)]
    assert parse_values("1024:4096:1024", "context") == [1024, 2048, 3072, 4096]
    assert parse_values("1:3,8,2", "batch") == [1, 2, 3, 8]
    assert parse_values("1:10:x3", "batch") == [1, 3, 9]


@pytest.mark.parametrize("text", ["a", "0:5", "5:1", "1:10:x1", "1:10:0", "1.5", "1:10:2.5", "1:999999999"])
def test_parse_values_refuses(text):
    with pytest.raises(RooflineError, match="--batch"):
        parse_values(text, "batch")


def test_cli_sweep_csv_to_file(tmp_path):
    out = tmp_path / "grid.csv"
    result = CliRunner().invoke(cli, ["sweep", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--batch", "1:64:x4",
                                      "--context", "1024,8192", "--weights-dtype", "bf16,fp8", "--output", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 4 * 2 * 2 and list(rows[0]) == list(COLUMNS)
    first = rows[0]
    r = roofline.decode("llama-3.1-8b", "h100-sxm", batch=1, context=1024)
    assert float(first["step_time_s"]) == pytest.approx(r.time_s, rel=1e-12)


def test_cli_sweep_json_and_table():
    runner = CliRunner()
    result = runner.invoke(cli, ["sweep", "-m", "gemma-3-27b", "-c", "h100-sxm", "--batch", "1,8",
                                 "--context", "1024", "--format", "json"])
    data = json.loads(result.output)
    assert data["mode"] == "calibrated" and len(data["points"]) == 2
    table = runner.invoke(cli, ["sweep", "-m", "gemma-3-27b", "-c", "b200", "--batch", "1,8"])
    assert table.exit_code == 0 and "step_time_s" in table.output
    # every shipped chip has a calibration now (b200: transferred from h100-sxm): no fallback to ideal
    b200 = json.loads(runner.invoke(cli, ["sweep", "-m", "gemma-3-27b", "-c", "b200", "--batch", "1,8",
                                          "--format", "json"]).output)
    assert b200["mode"] == "calibrated"


@pytest.mark.parametrize("args, message", [
    (["--batch", "0"], "batch must be whole numbers"),
    (["--batch", "x"], "--batch 'x'"),
    (["--context", "8:1"], "--context '8:1'"),
    (["--weights-dtype", "bf16,fp7"], "unknown weights dtype 'fp7'"),
    (["--set", "nope=1"], "--set nope: no such model field"),
])
def test_cli_sweep_bad_input(args, message, tmp_path):
    out = tmp_path / "grid.csv"
    result = CliRunner().invoke(cli, ["sweep", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--output", str(out), *args])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_sweep_json_is_written_in_chunks_and_equals_the_whole(monkeypatch):
    """The JSON of a sweep is streamed CHUNK points at a time; the text must be the same valid JSON
    as writing the whole grid at once (to_json), at every chunk boundary."""
    from roofline.cli import analysis_cmd
    from roofline.cli.output import to_json
    from roofline.sweep import COLUMNS
    args = ["sweep", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--batch", "1:64:x2", "--context", "1024,8192",
            "--format", "json"]
    whole = CliRunner().invoke(cli, args)
    assert whole.exit_code == 0, whole.output
    data = json.loads(whole.output)
    assert len(data["points"]) == 14
    expected = to_json({**{k: v for k, v in data.items() if k != "points"},
                        "points": [dict(zip(COLUMNS, (p[c] for c in COLUMNS))) for p in data["points"]]})
    assert whole.output == expected + "\n"
    for chunk in (1, 3, 14):
        monkeypatch.setattr(analysis_cmd, "CHUNK", chunk)
        assert CliRunner().invoke(cli, args).output == whole.output
