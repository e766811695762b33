"""`roofline measure` is a click command like the others: its help needs no PyTorch, and running it
without PyTorch says in one line what to install."""
import subprocess
import sys

from click.testing import CliRunner

from roofline.cli import cli


def test_help_needs_no_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    result = CliRunner().invoke(cli, ["measure", "--help"])
    assert result.exit_code == 0
    for option in ("--model", "-m", "--out", "--tiny", "--budget-s", "--layers", "--reps", "--skip-kernels", "--quiet"):
        assert option in result.output


def test_running_without_torch_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    result = CliRunner().invoke(cli, ["measure", "-m", "llama-3.1-8b", "--tiny"])
    assert result.exit_code == 2
    assert result.stderr.strip() == ("error: roofline measure needs PyTorch; install it with "
                                     "pip install 'roofline[measure]'")


def test_python_m_roofline_measure_points_to_the_command():
    done = subprocess.run([sys.executable, "-m", "roofline.measure", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert "roofline measure --help" in done.stderr and "Traceback" not in done.stderr


def test_bad_options_are_one_line():
    result = CliRunner().invoke(cli, ["measure", "-m", "llama-3.1-8b", "--reps", "0"])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1 and "--reps" in result.stderr
