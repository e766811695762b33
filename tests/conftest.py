import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VALIDATION = ROOT / "data" / "validation"


def read_jsonl(path):
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


@pytest.fixture(scope="session")
def h100_rows():
    return read_jsonl(VALIDATION / "h100" / "llama-3.1-8b_and_kernels.jsonl")


def _register_every_command():
    """The CLI imports a command's module when the command is first asked for; tests that walk every
    command (help text, --format choices, the scenario options) need them all registered."""
    from roofline.cli import cli
    cli.list_commands(None)


_register_every_command()
