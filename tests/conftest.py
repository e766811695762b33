"""Helpers shared by the test modules: paths, the CLI runner, the one-line error check, spec ids."""
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from roofline.cli import cli
from roofline.specs import builtin_dir

ROOT = Path(__file__).resolve().parent.parent
VALIDATION = ROOT / "data" / "validation"
MODELS = sorted(p.stem for p in builtin_dir("model").glob("*.yaml"))
CHIPS = sorted(p.stem for p in builtin_dir("hardware").glob("*.yaml"))
LINKS = sorted(p.stem for p in builtin_dir("link").glob("*.yaml"))


def read_jsonl(path):
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def run(*args):
    """The `roofline` command run in-process on `args` (each turned to text): click's Result."""
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(result, *needles):
    """Exit status 2, no traceback, one line on stderr containing every needle; that line."""
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    for needle in needles:
        assert str(needle) in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def no_user_specs(tmp_path, monkeypatch):
    """Only the shipped specs: no $ROOFLINE_SPECS, an empty user data folder."""
    monkeypatch.delenv("ROOFLINE_SPECS", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


@pytest.fixture(scope="session")
def h100_rows():
    return read_jsonl(VALIDATION / "h100" / "llama-3.1-8b_and_kernels.jsonl")


def _register_every_command():
    """The CLI imports a command's module when the command is first asked for; tests that walk every
    command (help text, --format choices, the scenario options) need them all registered."""
    from roofline.cli import cli
    cli.list_commands(None)


_register_every_command()
