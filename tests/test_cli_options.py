"""Every scenario option on every command that has it: the same help text, and the same one-line
error (exit status 2, no traceback, nothing written) for a bad value.

The cases are generated from roofline.cli.scenario_options.OPTIONS and from the commands
themselves: a new command that takes the scenario options is checked here without a line of test,
once it has a valid base invocation in BASE (a missing entry fails test_every_command_has_a_base).
"""
import click
import pytest
from click.testing import CliRunner

from roofline.cli import cli
from roofline.cli.scenario_options import OPTIONS

#: a valid invocation of each command that takes scenario options, without the options under test
BASE = {
    "decode": ["decode", "-m", "llama-3.1-8b", "-c", "h100-sxm"],
    "prefill": ["prefill", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--prompt", "512"],
    "explain": ["explain", "decode", "-m", "llama-3.1-8b", "-c", "h100-sxm"],
    "sweep": ["sweep", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--batch", "1,2"],
    "solve chips": ["solve", "chips", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--tokens-per-s-per-user", "20",
                    "--max-chips", "8"],
    "solve batch": ["solve", "batch", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--tokens-per-s-per-user", "20"],
    "solve context": ["solve", "context", "-m", "llama-3.1-8b", "-c", "h100-sxm"],
    "solve bandwidth": ["solve", "bandwidth", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--tokens-per-s-per-user",
                        "200"],
    "compare": ["compare", "-m", "llama-3.1-8b", "-c", "h100-sxm", "-c", "a100-sxm"],
    "serve frontier": ["serve", "frontier", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--isl", "1024", "--osl", "128",
                       "--concurrency", "4"],
    "solve serving": ["solve", "serving", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--isl", "1024", "--osl", "128",
                      "--request-rate", "2", "--ttft-max", "1", "--tpot-max", "0.05", "--max-chips", "2"],
    "plot roofline": ["plot", "roofline", "-m", "llama-3.1-8b", "-c", "h100-sxm"],
    "plot breakdown": ["plot", "breakdown", "-m", "llama-3.1-8b", "-c", "h100-sxm"],
    "plot sweep": ["plot", "sweep", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--batch", "1,2"],
}
#: commands that write a file: the file they are given, under tmp_path
OUTPUT = {"sweep": "out.csv", "plot roofline": "out.png", "plot breakdown": "out.png", "plot sweep": "out.png"}


def _commands(group=cli, prefix=()):
    for name, command in group.commands.items():
        path = prefix + (name,)
        if isinstance(command, click.Group):
            yield from _commands(command, path)
        else:
            yield " ".join(path), command


def _scenario_commands():
    """{path: command} of the commands built with scenario_options."""
    return {path: command for path, command in _commands() if hasattr(command.callback, "scenario_options")}


def _cases():
    for path, command in sorted(_scenario_commands().items()):
        for option in OPTIONS:
            if option.name in command.callback.scenario_options:
                yield pytest.param(path, option, id=f"{path}:{option.flags[0]}")


def test_every_command_has_a_base():
    missing = sorted(set(_scenario_commands()) - set(BASE))
    assert not missing, f"commands without a base invocation in BASE: {missing}"


@pytest.mark.parametrize("path, option", list(_cases()))
def test_bad_value_is_one_line_and_exit_2(path, option, tmp_path):
    args = list(BASE[path])
    flag = option.flags[0]
    if flag in args:
        at = args.index(flag)
        args[at + 1] = option.bad
    else:
        args += [flag, option.bad]
    before = set(tmp_path.iterdir())
    result = CliRunner().invoke(cli, args + (["--output", str(tmp_path / OUTPUT[path])] if path in OUTPUT else []))
    assert result.exit_code == 2, (args, result.output)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "Traceback" not in result.output
    assert option.error in lines[0], (option.error, lines[0])
    assert set(tmp_path.iterdir()) == before    # nothing written


@pytest.mark.parametrize("path, option", list(_cases()))
def test_same_help_everywhere(path, option):
    param = next(p for p in _scenario_commands()[path].params if p.name == option.name)
    assert param.help == option.help
    assert set(param.opts) == set(option.flags)


def test_base_invocations_run(tmp_path):
    for path, args in BASE.items():
        output = ["--output", str(tmp_path / OUTPUT[path])] if path.startswith("plot") else []
        result = CliRunner().invoke(cli, args + output)
        assert result.exit_code == 0, (path, result.output)
