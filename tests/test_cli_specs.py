"""`roofline list` / `roofline show` on every shipped spec, and bad spec files through the CLI.

Each bad-input case writes one broken file into tmp_path and passes its path on the command line;
the CLI must print one line that names the file and the field, and exit with status 2.
"""
import csv
import io
import json
from dataclasses import replace

import click
import pytest
import yaml

from roofline.cli import cli
from roofline.specs import builtin_dir
from conftest import CHIPS, LINKS, MODELS, ROOT, one_line_error, run

pytestmark = pytest.mark.usefixtures("no_user_specs")


# -- show and list ----------------------------------------------------------------------------

@pytest.mark.parametrize("spec_id", MODELS + CHIPS + LINKS)
def test_show_table(spec_id):
    result = run("show", spec_id)
    assert result.exit_code == 0, result.output
    assert spec_id in result.output and "source" in result.output
    assert "e+" not in result.output.split("\n\n")[0]  # derived figures carry SI prefixes, not exponents


@pytest.mark.parametrize("spec_id", MODELS + CHIPS + LINKS)
def test_show_json(spec_id):
    result = run("show", spec_id, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["id"] == spec_id and data["facts"] and data["sources"]


def test_show_model_derived_figures():
    data = json.loads(run("show", "llama-3.1-8b", "--format", "json").output)["derived"]
    # bf16 KV cache of Llama 3.1 8B: 2 (K, V) x 8 heads x 128 x 2 bytes x 32 layers = 131072 B/token
    assert data["kv_bytes_per_token"] == 2 * 8 * 128 * 2 * 32
    assert data["params_computed"] == pytest.approx(8.03e9, rel=1e-3)  # HF page: 8,030,261,248


def test_show_a_spec_file_by_path():
    path = builtin_dir("hardware") / "h100-sxm.yaml"
    result = run("show", str(path), "--format", "json")
    assert result.exit_code == 0 and json.loads(result.output)["id"] == "h100-sxm"


@pytest.mark.parametrize("kind, ids", [("models", MODELS), ("hardware", CHIPS), ("links", LINKS)])
def test_list_json(kind, ids):
    result = run("list", kind, "--format", "json")
    assert result.exit_code == 0, result.output
    assert [row["id"] for row in json.loads(result.output)] == ids


@pytest.mark.parametrize("kind, ids", [("models", MODELS), ("hardware", CHIPS), ("links", LINKS)])
def test_list_csv(kind, ids):
    result = run("list", kind, "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [row["id"] for row in rows] == ids
    assert all(float(value) > 0 for row in rows for key, value in row.items() if key.endswith("_per_s"))


@pytest.mark.parametrize("kind, ids", [("models", MODELS), ("hardware", CHIPS), ("links", LINKS)])
def test_list_table(kind, ids):
    result = run("list", kind)
    assert result.exit_code == 0, result.output
    for spec_id in ids:
        assert spec_id in result.output
    assert "e+" not in result.output


def test_list_hardware_prints_wafer_bandwidth_with_prefix():
    line = next(line for line in run("list", "hardware").output.splitlines() if line.startswith("wse-3"))
    assert "21 PB/s" in line and "44 GB" in line


# -- bad input, one test per case ------------------------------------------------------------

def chip(tmp_path, edit, name="chip-x"):
    """A copy of the shipped h100-sxm spec under a new id with `edit` applied to its mapping."""
    data = yaml.safe_load((builtin_dir("hardware") / "h100-sxm.yaml").read_text())
    data["id"] = name
    edit(data)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def model(tmp_path, edit, name="model-x", base="llama-3.1-8b"):
    data = yaml.safe_load((builtin_dir("model") / f"{base}.yaml").read_text())
    data["id"] = name
    edit(data)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def decode_on(chip_path=None, model_path=None):
    return run("decode", "--model", str(model_path or "llama-3.1-8b"), "--hardware", str(chip_path or "h100-sxm"))


def test_missing_field(tmp_path):
    path = chip(tmp_path, lambda d: d.pop("vendor"))
    one_line_error(decode_on(chip_path=path), path, "vendor", "missing")


def test_missing_capacity(tmp_path):
    path = chip(tmp_path, lambda d: d["memory"][0].pop("capacity"))
    one_line_error(decode_on(chip_path=path), path, "memory[0].capacity", "missing")


def test_number_without_unit(tmp_path):
    path = chip(tmp_path, lambda d: d["memory"][0]["bandwidth"].update(value=3.35))
    one_line_error(decode_on(chip_path=path), path, "memory[0].bandwidth", "no unit", "TB/s")


def test_wrong_dimension(tmp_path):
    path = chip(tmp_path, lambda d: d["memory"][0]["bandwidth"].update(value="3.35 TB"))
    one_line_error(decode_on(chip_path=path), path, "memory[0].bandwidth", "is not a bandwidth")


def test_negative_capacity(tmp_path):
    path = chip(tmp_path, lambda d: d["memory"][0]["capacity"].update(value="-80 GB"))
    one_line_error(decode_on(chip_path=path), path, "memory[0].capacity", "greater than zero")


def test_zero_capacity(tmp_path):
    path = chip(tmp_path, lambda d: d["memory"][0]["capacity"].update(value="0 GB"))
    one_line_error(decode_on(chip_path=path), path, "memory[0].capacity", "greater than zero")


def test_nan_quantity(tmp_path):
    path = chip(tmp_path, lambda d: d["memory"][0]["bandwidth"].update(value="nan TB/s"))
    one_line_error(decode_on(chip_path=path), path, "memory[0].bandwidth", "not a finite number")


def test_nan_count(tmp_path):
    path = model(tmp_path, lambda d: d.update(hidden_size=float("nan")))
    one_line_error(decode_on(model_path=path), path, "hidden_size", "not a finite number")


def test_unknown_key_suggests_the_nearest(tmp_path):
    path = chip(tmp_path, lambda d: d.update(powr=d.pop("power")))
    one_line_error(decode_on(chip_path=path), path, "powr", "unknown field", "did you mean 'power'")


def test_malformed_yaml(tmp_path):
    path = tmp_path / "chip-x.yaml"
    path.write_text("id: chip-x\nmemory: [unclosed\n")
    one_line_error(decode_on(chip_path=path), path, "malformed YAML", "line")


def test_key_written_twice(tmp_path):
    text = (builtin_dir("link") / "nvlink4.yaml").read_text().replace("id: nvlink4", "id: link-x")
    path = tmp_path / "link-x.yaml"
    path.write_text(text + "\nbandwidth: {value: 1 TB/s, source: assumption}\n")
    one_line_error(run("show", str(path)), path, "key 'bandwidth' appears twice", "line")


def test_unknown_hardware_id_suggests_the_nearest():
    one_line_error(decode_on(chip_path="h100"), "unknown hardware id 'h100'", "h100-sxm")


def test_unknown_model_id_suggests_the_nearest():
    one_line_error(decode_on(model_path="llama-3.1-7b"), "unknown model id 'llama-3.1-7b'", "llama-3.1-8b")


def test_unknown_id_for_show_searches_every_kind():
    one_line_error(run("show", "nvlink"), "unknown spec id 'nvlink'", "nvlink4")


def test_number_without_a_source(tmp_path):
    path = model(tmp_path, lambda d: d.pop("source"))
    one_line_error(decode_on(model_path=path), path, "num_layers", "has no source")


def test_source_key_not_defined(tmp_path):
    path = model(tmp_path, lambda d: d.update(hidden_size={"value": 4096, "source": "nowhere"}))
    one_line_error(decode_on(model_path=path), path, "hidden_size", "'nowhere' is not defined")


def test_unknown_dtype(tmp_path):
    path = model(tmp_path, lambda d: d["dtypes"].update(weights="bf17"))
    one_line_error(decode_on(model_path=path), path, "dtypes.weights", "unknown dtype 'bf17'")


def test_unknown_indexer_dtype(tmp_path):
    path = model(tmp_path, lambda d: d["attention"]["sparse"].update(index_dtype="fp7"), base="deepseek-v3.2")
    one_line_error(decode_on(model_path=path), path, "attention.sparse.index_dtype", "unknown dtype 'fp7'")


def test_id_must_match_file_name_in_a_spec_directory(tmp_path, monkeypatch):
    # inside a spec directory an id resolves to <id>.yaml, so the file's id must be its name
    root = tmp_path / "specs"
    (root / "hardware_specs").mkdir(parents=True)
    path = chip(tmp_path, lambda d: d.update(id="other"))
    moved = root / "hardware_specs" / path.name
    path.rename(moved)
    monkeypatch.setenv("ROOFLINE_SPECS", str(root))
    one_line_error(decode_on(chip_path=moved.stem), moved, "id", "must equal the file name")


def test_show_yaml_saved_under_another_name_loads_back_unchanged(tmp_path):
    from roofline.hardware import load_hardware
    from roofline.models import load_model
    for spec_id, load in (("h100-sxm", load_hardware), ("llama-3.1-8b", load_model)):
        text = run("show", spec_id, "--format", "yaml").output
        path = tmp_path / f"my-{spec_id}.yaml"
        path.write_text(text)
        mine, shipped = load(str(path)), load(spec_id)
        assert replace(mine, path=None) == replace(shipped, path=None)  # every field, facts included
        assert json.loads(run("decode", "-m", "llama-3.1-8b", "-c", str(path) if load is load_hardware
                              else "h100-sxm", "--format", "json").output)["time_s"] == \
            json.loads(run("decode", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--format", "json").output)["time_s"]


def test_a_chip_file_may_give_bare_values_under_one_source(tmp_path):
    path = tmp_path / "mychip.yaml"
    path.write_text("id: mychip\nname: My chip\nvendor: Me\nkind: gpu\nsource: guess\n"
                    "sources: {guess: 'my own estimate'}\n"
                    "memory:\n  - {name: HBM, tier: hbm, capacity: 288 GB, bandwidth: 8 TB/s}\n"
                    "peak_flops: {bf16: 2.5 PFLOP/s}\npower: 800 W\nsystem_power: 1 kW\n")
    data = json.loads(run("decode", "-m", "llama-3.1-8b", "-c", str(path), "--mode", "ideal",
                          "--format", "json").output)
    # ideal decode at batch 1 streams the bf16 weights once except the embedding table, of which it
    # reads one row (16.06 GB - 128256 x 4096 x 2 B), plus the KV cache of 1024 tokens (134.2 MB), at 8 TB/s
    assert data["time_s"] == pytest.approx((16.06e9 - 128256 * 4096 * 2 + 134.2e6) / 8e12, rel=0.01)
    assert data["capacity_bytes"] == 288e9 and data["power_w"] == 1000   # the system share, not the TDP
    bad = tmp_path / "badchip.yaml"  # another name: loaded specs are cached by path
    bad.write_text(path.read_text().replace("source: guess", "source: nowhere"))
    one_line_error(decode_on(chip_path=bad), bad, "source", "'nowhere' is not defined")


def test_spec_file_that_does_not_exist(tmp_path):
    one_line_error(decode_on(chip_path=tmp_path / "nope.yaml"), "nope.yaml", "does not exist")


# -- every command has help text and documentation ---------------------------------------------

def walk(command, path=()):
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from walk(sub, path + (name,))


def documentation():
    texts = [(ROOT / "README.md").read_text()] + [p.read_text() for p in sorted((ROOT / "docs").glob("*.md"))]
    return "\n".join(texts)


def test_every_command_has_help_and_documentation():
    docs = documentation()
    undocumented = []
    for path, command in walk(cli):
        assert (command.help or "").strip(), f"roofline {' '.join(path)} has no help text"
        result = run(*path, "--help")
        assert result.exit_code == 0 and "Usage:" in result.output
        if path and isinstance(command, click.Group):
            continue
        if path and f"roofline {' '.join(path)}" not in docs:
            undocumented.append(f"roofline {' '.join(path)}")
    assert not undocumented, f"commands not mentioned in README.md or docs/: {', '.join(undocumented)}"
