"""Shipped files name no directory of the machine they were written on; one version number."""
import configparser
import json
import re
import subprocess
from importlib import metadata

import pytest

import roofline
from roofline.model_import import import_config
from roofline.specs import portable_path

from conftest import ROOT

SHIPPED = (".yaml", ".yml", ".json", ".jsonl", ".csv", ".md", ".ipynb", ".py", ".txt", ".cfg")
#: a path into a home, work or temporary directory of a Unix machine, or a Windows drive path (C:\...);
#: the bare directory names a check searches for ("/tmp/" in a test) are not paths
ABSOLUTE = re.compile(r"(?<![\w.~-])/(?:root|home|work|tmp|Users|var/folders)/[\w.-]|\b[A-Z]:\\\\?[A-Za-z]")


def tracked_files():
    try:
        listing = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the shipped files are what git tracks")
    return [ROOT / name for name in listing.decode().split("\0") if name.endswith(SHIPPED)]


def absolute_paths(text):
    return [match.group(0) for match in ABSOLUTE.finditer(text)]


def test_the_scan_finds_what_it_looks_for():
    found = absolute_paths("datasheet: /work/main/hardware_specs/a100-sxm.yaml\nfrom C:\\Users\\me\\config.json\n"
                           "written to /tmp/x.yaml and /home/me/x")
    assert len(found) == 4, found
    assert not absolute_paths("hardware_specs/a100-sxm.yaml, 3.35 TB/s, https://example.org/work/paper, ~/.cache/x, "
                              "see data/validation/README.md and 1e9 B/s, assert '/tmp/' not in line")


def test_no_shipped_file_names_a_directory_of_this_machine():
    files = tracked_files()
    assert len(files) > 100
    offenders = [f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, match.start()) + 1}: {match.group(0)}"
                 for path in files if path.name != "test_hygiene.py"
                 for text in [path.read_text(errors="replace")] for match in ABSOLUTE.finditer(text)]
    assert not offenders, "absolute paths in shipped files:\n" + "\n".join(offenders)


def test_no_shipped_file_holds_merge_conflict_markers():
    marker = re.compile(r"^(<{7} |>{7} |={7}$)", re.M)
    offenders = [str(path.relative_to(ROOT)) for path in tracked_files() if path.name != "test_hygiene.py"
                 and marker.search(path.read_text(errors="replace"))]
    assert not offenders, f"unresolved merge conflicts in {', '.join(offenders)}"


def test_portable_path_is_relative_to_the_checkout_or_the_working_directory(tmp_path, monkeypatch):
    assert portable_path(ROOT / "hardware_specs" / "h100-sxm.yaml") == "hardware_specs/h100-sxm.yaml"
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    assert portable_path(tmp_path / "sub" / "x.csv") == "sub/x.csv"
    monkeypatch.chdir(ROOT)
    assert portable_path(tmp_path / "sub" / "x.csv") == "x.csv"


def test_model_import_writes_no_absolute_path(tmp_path, monkeypatch):
    """A config outside the working directory is recorded by its file name, not its absolute path."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(ROOT)
    config = tmp_path / "tiny-llama" / "config.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "hidden_size": 256, "intermediate_size": 512,
                                  "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                                  "vocab_size": 1000, "max_position_embeddings": 2048, "torch_dtype": "bfloat16"}))
    target, _ = import_config(config, output=tmp_path / "tiny-llama.yaml")
    text = target.read_text()
    assert str(tmp_path) not in text and not absolute_paths(text), text
    assert "config.json" in text


def test_one_version_number():
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert setup["metadata"]["version"] == "attr: roofline.__version__"
    assert metadata.version("roofline") == roofline.__version__
