"""Hostile input (issue 13): every case is one line on stderr, exit status 2, no traceback, nothing
written; or a correct answer. Work does not grow with the magnitude of an input, nothing is read
silently wrong, and JSON output is valid JSON.

The fuzzer in tests/test_fuzz.py generates such inputs; this module pins the cases the issue
names, each by what the user must see.
"""
import json
import math
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st

from roofline.cli import cli
from roofline.cli.analysis_cmd import MAX_VALUES, parse_values
from roofline.cli.output import to_json
from roofline.errors import RooflineError, SpecError, excerpt
from roofline.measurements import read_measurements
from roofline.models import LIMITS, load_model, model_from_data
from roofline.readers import MAX_SPEC_BYTES, parse_yaml
from roofline.specs import builtin_dir, load_yaml
from roofline.units import _FAST_UNITS, registry, to_si

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "tests" / "fixtures" / "hf_configs"
LLAMA = (builtin_dir("model") / "llama-3.1-8b.yaml").read_text()
DECODE = ["decode", "-m", "llama-3.1-8b", "-c", "h100-sxm"]


@pytest.fixture(autouse=True)
def no_user_specs(tmp_path, monkeypatch):
    monkeypatch.delenv("ROOFLINE_SPECS", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


def run(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def one_line_error(result, *needles):
    """Exit status 2, no traceback, one short line on stderr holding every needle; nothing on stdout."""
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in result.stderr
    assert len(lines[0]) < 400, lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert result.stdout == ""
    return lines[0]


def files_under(path):
    return sorted(p for p in Path(path).rglob("*") if p.is_file())


# -- item 1: each named cause is one line ------------------------------------------------------

@pytest.mark.parametrize("calibration", ["nonexistent", ""])
def test_unknown_calibration_is_one_line(calibration):
    one_line_error(run(*DECODE, "--calibration", calibration), "calibration", "known: ")


def test_validate_with_unknown_calibration_is_one_line(tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"kind": "copy", "bytes_moved": 1e9, "seconds": 0.5, "device": "NVIDIA H100 80GB HBM3"}\n')
    one_line_error(run("validate", "-i", rows, "-c", "h100-sxm", "--calibration", "nope"), "'nope'")


@pytest.mark.parametrize("value", ["inf", "1e309", "nan"])
def test_infinite_solver_target_is_one_line(value):
    one_line_error(run("solve", "chips", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--tokens-per-s", value),
                   "tokens-per-s")


def test_infinite_cost_limit_is_one_line():
    one_line_error(run("solve", "chips", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--tokens-per-s-per-user", "10",
                       "--max-usd-per-mtok", "inf", "--format", "json"), "max-usd-per-mtok")


@pytest.mark.parametrize("option", ["--batch", "--context"])
@pytest.mark.parametrize("command", [DECODE, ["sweep", "-m", "llama-3.1-8b", "-c", "h100-sxm"]])
def test_integers_past_int64_are_one_line(command, option):
    one_line_error(run(*command, option, 2 ** 63), option.strip("-"), "at most")


def test_output_parent_that_is_a_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = one_line_error(run("model", "import", CONFIGS / "llama-3.1-8b.json", "--output",
                             blocker / "llama-3.1-8b.yaml"), "cannot write")
    assert "llama-3.1-8b.yaml" in out
    assert files_under(tmp_path) == [blocker]


def test_data_home_that_is_a_file(tmp_path):
    blocker = tmp_path / "data-home"
    blocker.write_text("x")
    one_line_error(run("model", "import", CONFIGS / "llama-3.1-8b.json", "--id", "my-llama",
                       env={"XDG_DATA_HOME": str(blocker)}),
                   "cannot write", "XDG_DATA_HOME")
    assert files_under(tmp_path) == [blocker]


def test_long_id_is_one_line(tmp_path):
    one_line_error(run("model", "import", CONFIGS / "llama-3.1-8b.json", "--id", "a" * 300, "--output", tmp_path),
                   "--id", "up to 100")
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("encoding, needle", [("utf-16", "UTF-16"), ("latin-1", "UTF-8")])
def test_spec_file_not_utf8(tmp_path, encoding, needle):
    path = tmp_path / "llama-x.yaml"
    path.write_bytes(LLAMA.replace("llama-3.1-8b", "llama-x").replace("Llama 3.1 8B", "Llämä").encode(encoding))
    one_line_error(run("show", path), "not UTF-8", needle)


def test_broken_user_spec_does_not_break_list(tmp_path):
    """One unreadable file under $ROOFLINE_SPECS: `list models` lists the others and names it."""
    folder = tmp_path / "specs" / "model_specs"
    folder.mkdir(parents=True)
    (folder / "broken.yaml").write_bytes(b"id: broken\nname: \xe9\xff\n")
    result = run("list", "models", env={"ROOFLINE_SPECS": str(tmp_path / "specs")})
    assert result.exit_code == 0
    assert "llama-3.1-8b" in result.stdout and "broken" not in result.stdout
    assert result.stderr.strip().startswith("warning: skipped broken:")
    assert run(*DECODE, env={"ROOFLINE_SPECS": str(tmp_path / "specs")}).exit_code == 0


def test_utf8_byte_order_mark_is_read():
    assert parse_yaml("\ufeffa: 1".lstrip("\ufeff")) == {"a": 1}


def test_config_utf16_is_one_line(tmp_path):
    path = tmp_path / "config.json"
    path.write_bytes((CONFIGS / "llama-3.1-8b.json").read_text().encode("utf-16"))
    one_line_error(run("model", "import", path, "--output", tmp_path), "UTF-16")
    assert files_under(tmp_path) == [path]


def test_non_scalar_yaml_key(tmp_path):
    path = tmp_path / "llama-x.yaml"
    path.write_text("? [a, b]\n: 1\n" + LLAMA.replace("llama-3.1-8b", "llama-x"))
    one_line_error(run("show", path), "a key must be a plain name or number")


def _config(tmp_path, text, name="config.json"):
    path = tmp_path / "in" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def _llama_config(**changes):
    data = json.loads((CONFIGS / "llama-3.1-8b.json").read_text())
    data.update(changes)
    return json.dumps(data)


@pytest.mark.parametrize("text, needle", [
    (_llama_config(hidden_size=1).replace(': 1,', ': NaN,'), "NaN"),
    (_llama_config(hidden_size=1).replace(': 1,', ': -Infinity,'), "Infinity"),
    (_llama_config(hidden_size=1).replace(': 1,', ': ' + "9" * 5000 + ','), "5000 digits"),
    (_llama_config(hidden_size=1).replace(': 1,', ': 1e400,'), "overflows"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    (_llama_config(torch_dtype=["bfloat16"]), "torch_dtype"),
    (_llama_config(num_hidden_layers=[32]), "num_hidden_layers"),
    (_llama_config(num_hidden_layers=10 ** 9), "limit of 10,000"),
])
def test_hostile_config_json(tmp_path, text, needle):
    out = tmp_path / "out"
    out.mkdir()
    one_line_error(run("model", "import", _config(tmp_path, text), "--output", out), needle)
    assert files_under(out) == []


@pytest.mark.parametrize("changes, needle", [
    ({"mlp_only_layers": ["a", 1]}, "mlp_only_layers"),
    ({"mlp_only_layers": 3}, "mlp_only_layers"),
    ({"decoder_sparse_step": "2"}, "decoder_sparse_step"),
])
def test_hostile_moe_config(tmp_path, changes, needle):
    data = json.loads((CONFIGS / "qwen3-30b-a3b.json").read_text())
    data.update(changes)
    one_line_error(run("model", "import", _config(tmp_path, json.dumps(data)), "--output", tmp_path), needle)


def test_no_rope_layers_not_a_list(tmp_path):
    data = {"architectures": ["Llama4ForCausalLM"], "text_config": {
        "hidden_size": 5120, "num_attention_heads": 40, "num_key_value_heads": 8, "num_hidden_layers": 48,
        "head_dim": 128, "intermediate_size": 8192, "intermediate_size_mlp": 16384, "vocab_size": 202048,
        "max_position_embeddings": 10485760, "num_local_experts": 16, "num_experts_per_tok": 1,
        "attention_chunk_size": 8192, "no_rope_layers": 5, "torch_dtype": "bfloat16"}}
    one_line_error(run("model", "import", _config(tmp_path, json.dumps(data)), "--output", tmp_path),
                   "no_rope_layers")


def _jsonl(tmp_path, line, name="rows.jsonl"):
    path = tmp_path / name
    path.write_text(line + "\n")
    return path


@pytest.mark.parametrize("row, needle", [
    ('{"kind": "copy", "bytes_moved": 1e9, "seconds": NaN, "device": "cpu"}', "NaN"),
    ('{"kind": "copy", "bytes_moved": 1e9, "seconds": Infinity, "device": "cpu"}', "Infinity"),
    ('{"kind": "copy", "bytes_moved": [1e9], "seconds": 0.5, "device": "cpu"}', "bytes_moved"),
    ('{"kind": "matmul", "m": 8, "n": 8, "k": 8, "dtype": ["bf16"], "seconds": 0.5, "device": "cpu"}', "dtype"),
    ('{"kind": "copy", "bytes_moved": 1e9, "seconds": 1e-320, "device": "cpu"}', "outside the range"),
    ('{"kind": "decode_step", "model": "llama-3.1-8b", "batch": 1, "ctx": 1e14, "seconds": 0.01, '
     '"device": "NVIDIA H100 80GB HBM3"}', "limit"),
])
def test_hostile_measurement_rows(tmp_path, row, needle):
    one_line_error(run("validate", "-i", _jsonl(tmp_path, row)), needle)


def _published(tmp_path, **cells):
    row = {"model": "Llama-3.1-8B", "hardware": "NVIDIA H100", "num_chips": "1", "precision": "bf16",
           "batch_or_concurrency": "1", "input_len": "1024", "output_len": "128",
           "metric": "decode_tokens_per_s_per_user", "value": "100", "unit": "tok/s", **cells}
    path = tmp_path / "published.csv"
    path.write_text(",".join(row) + "\n" + ",".join(row.values()) + "\n")
    return path


@pytest.mark.parametrize("cells, needle", [({"output_len": "0"}, "output_len"),
                                           ({"input_len": "100000000000000"}, "limits"),
                                           ({"input_len": "9" * 5000}, "longer than 2,000"),
                                           ({"value": "nan"}, "greater than zero")])
def test_hostile_published_rows(tmp_path, cells, needle):
    one_line_error(run("validate", "-i", _published(tmp_path, **cells)), needle)


def test_byte_order_mark_jsonl_is_read_as_json_lines(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"kind": "copy", "bytes_moved": 1e9, "seconds": 0.5, "device": "cpu"}\n')
    rows = read_measurements(path).rows
    assert [(r.kind, r.shape, r.seconds) for r in rows] == [("copy", (1e9,), 0.5)]


def _alias_bomb(levels):
    text = 'a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]\n'
    for i in range(1, levels + 1):
        text += f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n"
    return text + LLAMA.replace("name: Llama 3.1 8B", f"name: *a{levels}").replace("llama-3.1-8b", "bomb")


def test_alias_bomb_is_refused_with_a_short_message(tmp_path):
    """1.2 kB of nested aliases (9^9 strings once expanded) once made a 312 MB error message."""
    path = tmp_path / "bomb.yaml"
    path.write_text(_alias_bomb(9))
    assert path.stat().st_size < 2000
    start = time.perf_counter()
    one_line_error(run("show", path), "aliases are expanded")
    assert time.perf_counter() - start < 10      # generous: the refusal walks at most 100k nodes


def test_small_alias_expansion_still_reads(tmp_path):
    data = parse_yaml("a: &x {value: 1, source: s}\nb: *x\n")
    assert data["a"] == data["b"] == {"value": 1, "source": "s"}


def test_recursive_alias_is_refused():
    with pytest.raises(SpecError, match="refers to the node that holds it"):
        parse_yaml("a: &x [1, *x]\n")


def test_error_quotes_an_excerpt_of_a_huge_value():
    huge = ["x" * 1000] * 100_000
    text = excerpt(huge)
    assert len(text) < 100 and text.startswith("['xxx")
    with pytest.raises(SpecError) as info:
        model_from_data({**load_yaml(builtin_dir("model") / "llama-3.1-8b.yaml"), "name": huge},
                        Path("llama-3.1-8b.yaml"))
    assert len(str(info.value)) < 300


# -- item 2: no hang -----------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["100000000", "1e30", "10001"])
def test_absurd_layer_count_is_refused_with_its_limit(value):
    one_line_error(run(*DECODE, "--set", f"num_layers={value}"), "num_layers", f"limit of {LIMITS['num_layers']:,}")


def test_layer_count_at_the_limit_is_answered():
    result = run(*DECODE, "--set", f"num_layers={LIMITS['num_layers']}", "--format", "json")
    assert result.exit_code == 0
    one_layer = json.loads(run(*DECODE, "--set", "num_layers=1", "--format", "json").stdout)
    many = json.loads(result.stdout)
    assert many["step_time_s"] > 1000 * one_layer["step_time_s"]


def _walked_groups(model):
    """The layer composition counted the slow way, one layer at a time (the definition)."""
    groups = {}
    for layer in range(model.num_layers):
        key = (model.is_local(layer), model.is_moe(layer))
        groups[key] = groups.get(key, 0) + 1
    return groups


@settings(max_examples=60, deadline=None)
@given(layers=st.integers(1, 300), pattern=st.text("LG", min_size=1, max_size=7), step=st.integers(1, 5),
       first=st.integers(0, 40), start=st.integers(0, 300), stop=st.integers(0, 300))
def test_layer_counts_equal_the_layer_by_layer_walk(layers, pattern, step, first, start, stop):
    overrides = {"num_layers": str(layers), "attention.sliding_window": "4096", "attention.layer_pattern": pattern}
    model = load_model("qwen3-235b-a22b", {**overrides, "moe.layer_step": str(step),
                                          "moe.first_dense_layers": str(first)})
    assert model.layer_groups == _walked_groups(model)
    start, stop = sorted((min(start, layers), min(stop, layers)))
    walked = {}
    for layer in range(start, stop):
        key = (model.is_local(layer), model.is_moe(layer))
        walked[key] = walked.get(key, 0) + 1
    assert {k: v for k, v in model.layer_counts(start, stop).items() if v} == walked


def test_value_lists_parse_in_linear_time():
    assert parse_values("1:100000", "batch") == list(range(1, 100_001))
    assert parse_values("1,8,64,8,1:3", "batch") == [1, 8, 64, 2, 3]
    with pytest.raises(RooflineError, match="more than 100,000 values"):
        parse_values(f"1:{MAX_VALUES + 1}", "batch")
    with pytest.raises(RooflineError, match="more than 100,000 values"):
        parse_values("1:" + "9" * 18, "batch")
    with pytest.raises(RooflineError, match="too long"):
        parse_values("9" * 5000, "batch")


def test_oversized_spec_file_is_refused_unread(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("id: big\nname: [" + ",".join(["1"] * 3_000_000) + "]\n")
    assert path.stat().st_size > MAX_SPEC_BYTES
    one_line_error(run("show", path), f"larger than {MAX_SPEC_BYTES:,} bytes")


# -- item 3: no silent misreading ---------------------------------------------------------------

@pytest.mark.parametrize("option, text", [("--power", "1,5 kW"), ("--price", "2,50 USD/hour"),
                                          ("--price", "USD/hour"), ("--power", "3 3 kW"),
                                          ("--price", "2.5 USD/hour 3")])
def test_quantity_is_one_number_and_one_unit(option, text):
    one_line_error(run(*DECODE, option, text), "one number and one unit")


@pytest.mark.parametrize("text", ["3 3 TB/s", "3,35 TB/s", "TB/s", "3.35 TB/s/", "3.35 TB 2/s"])
def test_spec_quantity_is_one_number_and_one_unit(text):
    with pytest.raises(RooflineError, match="one number and one unit"):
        to_si(text, "bandwidth", "f.yaml: memory.bandwidth")


def test_fast_units_mean_what_pint_reads():
    """Every unit read without pint has the dimension and factor units.txt gives it in pint."""
    from roofline.units import DIMENSIONS
    ureg = registry()
    for unit, (dimension, factor) in _FAST_UNITS.items():
        quantity = ureg.Quantity(1.0, unit)
        assert quantity.to(DIMENSIONS[dimension]).magnitude == pytest.approx(factor, rel=1e-12), unit


def test_uncommon_units_still_go_to_pint():
    assert to_si("2 TB/ms", "bandwidth") == pytest.approx(2e15)
    assert to_si("1 GiB / s", "bandwidth") == 2 ** 30


@pytest.mark.parametrize("text, value", [("1:30", "1:30"), ("017", 17), ("0o17", 15), ("0x10", 16),
                                         ("yes", "yes"), ("on", "on"), ("2024-05-01", "2024-05-01"),
                                         ("1e3", 1000.0), ("~", None), ("True", True)])
def test_yaml_is_read_as_yaml_1_2(text, value):
    assert parse_yaml(f"a: {text}")["a"] == value


def test_base_60_layer_count_is_an_error(tmp_path):
    path = tmp_path / "llama-x.yaml"
    path.write_text(LLAMA.replace("llama-3.1-8b", "llama-x").replace("num_layers: 32", "num_layers: 1:30"))
    one_line_error(run("show", path), "num_layers", "'1:30'")
    one_line_error(run(*DECODE, "--set", "num_layers=1:30"), "num_layers", "'1:30'")


def test_floats_print_as_written():
    model = load_model("llama-3.1-8b")
    assert next(f.text for f in model.facts if f.field == "params.total") == "8.03e9"


def test_missing_tie_embeddings_is_an_error(tmp_path):
    path = tmp_path / "llama-x.yaml"
    path.write_text(LLAMA.replace("llama-3.1-8b", "llama-x").replace("tie_embeddings: false\n", ""))
    one_line_error(run("show", path), "tie_embeddings", "missing")


def test_empty_output_is_an_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    one_line_error(run("model", "import", CONFIGS / "llama-3.1-8b.json", "--output", ""), "--output")
    assert files_under(tmp_path) == []


def test_explain_context_zero_is_an_error():
    one_line_error(run("explain", "decode", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--context", "0"), "context")


# -- item 4: JSON output is valid JSON -----------------------------------------------------------

def test_json_never_holds_infinity_or_nan(capsys):
    text = to_json({"a": math.inf, "rows": [{"b": float("nan"), "c": 1.5}]})
    assert json.loads(text) == {"a": None, "rows": [{"b": None, "c": 1.5}]}
    assert "a is inf" in capsys.readouterr().err


def test_decode_json_is_strict_json():
    result = run(*DECODE, "--format", "json")
    json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"{c} in JSON output"))


# -- the last resort -----------------------------------------------------------------------------

def test_unexpected_exception_is_one_internal_error_line(monkeypatch):
    import roofline.cli.run_cmd  # noqa: F401  (registers decode)
    from roofline import api

    def broken(*args, **kwargs):
        raise ZeroDivisionError("float division by zero")
    monkeypatch.setattr(api, "decode", broken)
    result = run(*DECODE)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == ["internal error: ZeroDivisionError: float division by zero"]


def test_numpy_warnings_do_not_reach_stderr():
    result = run("sweep", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--batch", "1", "--context", "1")
    assert result.exit_code == 0 and "Warning" not in result.stderr


def test_sweep_csv_is_written_in_chunks_equal_to_one_table(tmp_path, monkeypatch):
    """A grid written CHUNK rows at a time reads back as the rows of the whole grid, in order."""
    import csv
    from roofline.cli import analysis_cmd
    from roofline.sweep import COLUMNS, sweep
    monkeypatch.setattr(analysis_cmd, "CHUNK", 4)
    result = run("sweep", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--batch", "1:5", "--context", "1,1024",
                 "--output", tmp_path / "grid.csv")
    assert result.exit_code == 0
    rows = list(csv.reader((tmp_path / "grid.csv").open()))
    grid = sweep("llama-3.1-8b", "h100-sxm", batch=[1, 2, 3, 4, 5], context=[1, 1024])
    assert rows[0] == list(COLUMNS)
    expected = grid.rows()
    assert len(rows) - 1 == len(expected)
    for written, row in zip(rows[1:], expected):
        for text, value in zip(written, row):
            if isinstance(value, float):      # CSV numbers carry 12 significant digits (display.plain)
                assert float(text) == pytest.approx(value, rel=1e-11)
            else:
                assert text == str(value)
    assert files_under(tmp_path) == [tmp_path / "grid.csv"]


def test_sweep_output_that_cannot_be_written_leaves_nothing(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    one_line_error(run("sweep", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--output", blocker / "grid.csv"),
                   "cannot write")
    assert files_under(tmp_path) == [blocker]


@pytest.mark.parametrize("read", [
    lambda text: to_si(text, "power", "--power"),
    lambda text: __import__("roofline.measurements", fromlist=["row_filter"]).row_filter(f"model=a{text}"),
])
def test_long_text_is_refused_in_linear_time(read):
    """Patterns that backtrack (a run of digits or blanks then a stray character) once took
    quadratic time: 16k blanks in a row filter took 4 s. Long text is refused before any pattern."""
    for text in ("1" * 100_000 + "x W", " " * 100_000 + "x"):
        start = time.perf_counter()
        with pytest.raises(RooflineError):
            read(text)
        assert time.perf_counter() - start < 1


@pytest.mark.parametrize("cell", ["(" * 5000, "x" * 200_000, "llama\x00"])
def test_hostile_csv_cells(tmp_path, cell):
    result = run("validate", "-i", _published(tmp_path, notes="", parallelism=cell))
    assert result.exit_code == 2 and result.stderr.startswith("error: ") and "internal" not in result.stderr


def test_calibration_output_whose_parent_is_a_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rows = ROOT / "data" / "validation" / "h100" / "llama-3.1-8b_and_kernels.jsonl"
    one_line_error(run("calibrate", "-c", "h100-sxm", "-i", rows, "--output", blocker / "cal.yaml"), "cannot write")
    assert files_under(tmp_path) == [blocker]


@pytest.mark.parametrize("variable, value", [("ROOFLINE_SPECS", "a" * 5000), ("XDG_DATA_HOME", "/" + "a" * 5000),
                                             ("ROOFLINE_SPECS", "/etc/hostname")])
def test_hostile_environment_still_answers(variable, value):
    result = run(*DECODE, "--format", "json", env={variable: value})
    assert result.exit_code == 0 and json.loads(result.stdout)["step_time_s"] > 0


def test_import_into_a_data_home_too_long_to_exist(tmp_path):
    one_line_error(run("model", "import", CONFIGS / "llama-3.1-8b.json", "--id", "my-llama",
                       env={"XDG_DATA_HOME": "/" + "a" * 5000}), "cannot write there")


def test_every_command_is_found_by_importing_only_its_modules():
    """The CLI imports a command's modules when it runs (start-up time): COMMAND_MODULES must name
    every command, and for a group every module that adds a subcommand to it. Each group is looked
    up in a fresh interpreter, where nothing else has been imported."""
    import subprocess
    import sys
    import click
    from roofline.cli import COMMAND_MODULES
    context = click.Context(cli)
    full = {name: cli.get_command(context, name) for name in cli.list_commands(context)}
    assert set(full) == set(COMMAND_MODULES)
    for name, command in full.items():
        if isinstance(command, click.Group):
            script = ("import click; from roofline.cli import cli; "
                      f"print(sorted(cli.get_command(click.Context(cli), {name!r}).commands))")
            alone = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
            assert alone.stdout.strip() == str(sorted(command.commands)), name


def _cache_files(folder):
    return sorted((Path(folder) / "roofline" / "specs").glob("*.json"))


def test_a_broken_cache_never_breaks_a_command(tmp_path):
    """Parsed spec files are cached by content under XDG_CACHE_HOME; corrupt entries, a cache
    folder that is a file, or one that cannot exist change nothing but the time taken."""
    expected = json.loads(run(*DECODE, "--format", "json", env={"XDG_CACHE_HOME": str(tmp_path)}).stdout)
    entries = _cache_files(tmp_path)
    assert entries
    for entry in entries:
        entry.write_bytes(b"\xff{not json")
    again = run(*DECODE, "--format", "json", env={"XDG_CACHE_HOME": str(tmp_path)})
    assert json.loads(again.stdout) == expected
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for cache in (blocker, "/" + "a" * 5000):
        result = run(*DECODE, "--format", "json", env={"XDG_CACHE_HOME": str(cache)})
        assert result.exit_code == 0 and json.loads(result.stdout) == expected


def test_the_cache_follows_the_file_content(tmp_path):
    spec = tmp_path / "llama-x.yaml"
    spec.write_text(LLAMA.replace("llama-3.1-8b", "llama-x"))
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    first = json.loads(run("decode", "-m", spec, "-c", "h100-sxm", "--format", "json", env=env).stdout)
    assert run("decode", "-m", spec, "-c", "h100-sxm", "--format", "json", env=env).stdout == json.dumps(first, indent=2) + "\n"
    spec.write_text(LLAMA.replace("llama-3.1-8b", "llama-x").replace("num_layers: 32", "num_layers: 16"))
    half = json.loads(run("decode", "-m", spec, "-c", "h100-sxm", "--format", "json", env=env).stdout)
    assert half["step_time_s"] < 0.75 * first["step_time_s"]
    from roofline.readers import read_spec
    assert str(read_spec(builtin_dir("model") / "llama-3.1-8b.yaml")["params"]["total"]["value"]) == "8.03e9"


def test_the_cache_keeps_a_bounded_number_of_entries(tmp_path, monkeypatch):
    """A user who edits spec files for years must not fill the disk: writing an entry prunes the
    oldest-written beyond readers.CACHE_ENTRIES, and the file just parsed stays."""
    import os

    from roofline import readers
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(readers, "CACHE_ENTRIES", 5)
    folder = readers.cache_dir()
    folder.mkdir(parents=True)
    for i in range(8):
        stale = folder / f"{i:064x}.json"
        stale.write_text("{}")
        os.utime(stale, (1_000_000 + i, 1_000_000 + i))
    value = readers.read_spec(builtin_dir("model") / "llama-3.1-8b.yaml")
    left = sorted(entry.name for entry in folder.glob("*.json"))
    assert len(left) == 5
    assert f"{0:064x}.json" not in left and f"{7:064x}.json" in left     # the oldest went first
    assert readers.read_spec(builtin_dir("model") / "llama-3.1-8b.yaml") == value
    assert len(list(folder.glob("*.json"))) == 5
