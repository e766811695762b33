"""What a person reads: numbers with units and SI prefixes, sections, wrapping, one --format, counts
like 8k, and what a program reads: plain SI numbers at 12 significant digits under stable names."""
import json
import re

import click
import pytest
from click.testing import CliRunner

from roofline.cli import cli
from roofline.cli.output import FORMATS, DtypeType, parse_count
from roofline.display import field_unit, plain, si_text
from roofline.dtypes import DTYPES
from roofline.errors import RooflineError
from roofline.specs import near_ids, spec_paths

#: a number printed as Python's float repr would be, 1.606e+10: what a table must never show
RAW_EXPONENT = re.compile(r"\d[eE][+-]?\d")
DECODE = ["decode", "-m", "llama-3.1-8b", "-c", "h100-sxm"]


def run(*args, env=None):
    result = CliRunner(env=env).invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("value, unit, text", [
    (1.606e10, "B", "16.06 GB"), (6.711e-3, "s", "6.711 ms"), (2300.0, "W", "2.3 kW"), (149.02, "tok/s", "149 tok/s"),
    (66309.19, "tok/s", "66.31k tok/s"), (7.4375, "USD/Mtok", "7.438 USD/Mtok"), (766387.5, "", "766.4k"),
    (5e-6, "s", "5 µs"), (8e10, "B", "80 GB"), (0.99959, "FLOP/B", "0.9996 FLOP/B"), (12345.0, "s", "12,340 s"),
    (999.96, "s", "1000 s"), (0.0, "s", "0 s"), (None, "s", ""), (True, "", "yes"), (7.948e-05, "", "0.00007948"),
])
def test_si_text_examples_of_the_issue(value, unit, text):
    # the issue's examples (16.06 GB, 6.711 ms, 2.3 kW, 149 tok/s) and the edges: rounding up to a new
    # prefix, zero, missing, booleans, tiny unitless shares; seconds take no prefix above 1 (12,340 s, 4 digits)
    assert si_text(value, unit) == text


def test_units_follow_field_names():
    assert [field_unit(n) for n in ("step_time_s", "weight_bytes", "power_w", "tokens_per_s_per_user",
                                    "usd_per_mtok", "bandwidth_bytes_per_s", "batch", "requests_per_s",
                                    "interactivity_tok_s_per_user", "output_tokens_per_s_per_chip")] == \
        ["s", "B", "W", "tok/s", "USD/Mtok", "B/s", "", "req/s", "tok/s", "tok/s"]
    assert si_text(3.716, "req/s") == "3.716 req/s" and si_text(4280.4, "tok/s") == "4.28k tok/s"


def test_json_numbers_are_rounded_to_12_significant_digits():
    assert plain(4.9999999999999996e-06) == 5e-06
    assert plain({"a": [0.1 + 0.2]}) == {"a": [0.3]}
    data = json.loads(run(*DECODE, "--format", "json"))
    for name, value in data.items():
        if isinstance(value, float) and value:
            assert float(f"{value:.12g}") == value and len(repr(value)) <= 19, (name, value)
    # same names as before the table was rewritten: programs keep working
    for name in ("step_time_s", "time_s", "tokens_per_s_per_user", "tokens_per_s", "weight_bytes", "kv_cache_bytes",
                 "compute_time_s", "memory_time_s", "overhead_time_s", "usd_per_mtok", "power_w", "dtypes", "notes"):
        assert name in data


def test_decode_table_has_units_sections_and_no_raw_exponents():
    text = run(*DECODE, "--batch", "8", "--price", "3 USD/hour", env={"ROOFLINE_WIDTH": "100"})
    assert not RAW_EXPONENT.search(text), text
    for section in ("answer", "time", "memory", "cost", "assumptions"):
        assert re.search(rf"^{section}", text, re.M), section
    assert "16.06 GB" in text  # Llama-3.1-8B weights in bf16: 8.03e9 parameters x 2 B
    assert re.search(r"time per token \(one step\)\s+\d+(\.\d+)? ms", text)
    assert re.search(r"tokens/s, all 8 users\s+[\d.]+k? tok/s", text)
    assert re.search(r"power\s+1.275 kW", text)  # the H100 SXM's share of a DGX H100 (10.2 kW / 8)
    # one chip: the step time is the token latency and the stage time; printed once
    assert len(re.findall(r"\d ms\b", text.split("time (")[0])) == 1
    assert "layout" not in text  # one chip: no layout section full of 1s
    assert not re.search(r"^\s+\S.*\s{2,}$", text, re.M)  # no row without a value


def test_prefill_speaks_of_time_to_first_token():
    text = run("prefill", "-m", "llama-3.1-8b", "-c", "h100-sxm", "-p", "2k")
    assert "time to first token" in text and "prompt tokens/s" in text
    assert "tokens_per_s_per_user" not in text and "context" not in text
    assert re.search(r"prompt tokens\s+2000$", text, re.M)  # 2k is decimal


def test_breakdown_shares_sum_to_100_percent_with_fixed_costs_and_links():
    for args in (DECODE, ["prefill", "-m", "llama-3.1-8b", "-c", "h100-sxm", "-p", "2048", "--tp", "2"]):
        text = run(*args, "--breakdown")
        assert "fixed costs" in text
        shares = [float(s) for s in re.findall(r"\s(\d+\.\d)%\s", text)]
        # each share is rounded to 0.1%: 13 to 15 rows can be off by 0.05% each
        assert sum(shares) == pytest.approx(100, abs=0.8)
    assert "link bandwidth" in text and "link latency" in text  # TP=2 over NVLink
    rows = list(csv_rows(run(*args, "--breakdown", "--format", "csv")))
    assert sum(float(r["share_percent"]) for r in rows) == pytest.approx(100, rel=1e-9)
    assert {"fixed costs", "link latency", "link bandwidth"} <= {r["operator"] for r in rows}


def csv_rows(text):
    import csv
    import io
    return csv.DictReader(io.StringIO(text))


def test_compute_time_is_not_printed_as_zero_when_memory_bound():
    # at batch 1 every operator of a decode step is memory-bound: the table has no "compute 0 s" row
    text = run(*DECODE)
    assert "compute-bound operators" not in text and "0 s" not in text
    text = run("prefill", "-m", "llama-3.1-8b", "-c", "h100-sxm", "-p", "8192")
    assert re.search(r"in compute-bound operators\s+\d", text)


def test_tables_wrap_to_the_terminal_width():
    for args in (["show", "h100-sxm"], ["show", "llama-3.1-8b"], ["explain", "decode", "-m", "llama-3.1-8b",
                                                                 "-c", "h100-sxm"]):
        wide = max(len(line) for line in run(*args, env={"ROOFLINE_WIDTH": None}).splitlines())  # piped, no COLUMNS
        assert wide > 120  # unwrapped when piped: 300-575 characters before
        narrow = run(*args, env={"ROOFLINE_WIDTH": "100"}).splitlines()
        long_lines = [line for line in narrow if len(line) > 100]
        # a URL or a symbolic expression can be one unbreakable word; nothing else exceeds the width
        assert all(re.search(r"\S{40,}", line) for line in long_lines), long_lines


def all_commands(group=cli, prefix=()):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from all_commands(command, prefix + (name,))
        else:
            yield prefix + (name,), command


#: commands that write a file and print no result to format: measure (JSON lines), plot (an image),
#: calibrate transfer (a calibration file)
NO_FORMAT = {("measure",), ("plot",), ("calibrate", "transfer")}


def test_every_command_offers_the_same_format_choices():
    commands = dict(all_commands())
    assert len(commands) >= 14
    for path, command in commands.items():
        options = {o.name: o for o in command.params}
        if path[:1] in NO_FORMAT or path[:2] in NO_FORMAT:
            continue
        assert "fmt" in options, f"{' '.join(path)} has no --format"
        choices = tuple(options["fmt"].type.choices)
        # show alone adds yaml: the spec file itself, to save as a chip or model of one's own
        assert choices == (FORMATS + ("yaml",) if path == ("show",) else FORMATS), path
        help_text = run(*path, "--help")
        assert "table|json|csv|markdown" in help_text, path


def test_dtype_options_list_the_valid_dtypes():
    for path, command in all_commands():
        for param in command.params:
            if param.name.endswith("dtype"):
                metavar = param.type.get_metavar(param) if isinstance(param.type, DtypeType) else ""
                shown = f"{param.help} {metavar}"
                assert all(name in shown for name in DTYPES), (path, param.name, shown)


@pytest.mark.parametrize("text, value", [("8192", 8192), ("8k", 8000), ("128k", 128000), ("8Ki", 8192),
                                         ("128ki", 131072), ("1.5M", 1500000), (64, 64)])
def test_counts_take_k_and_ki(text, value):
    assert parse_count(text) == value


@pytest.mark.parametrize("text", ["1.5", "8.5x", "k", "0", "1.0001k"])
def test_counts_refuse_what_is_no_whole_number(text):
    with pytest.raises(RooflineError):
        parse_count(text)


def test_cli_counts_reach_the_model():
    data = json.loads(run(*DECODE, "--context", "8k", "--batch", "1Ki", "--format", "json"))
    assert (data["context"], data["batch"]) == (8000, 1024)
    result = CliRunner().invoke(cli, DECODE + ["--context", "8kk"])
    assert result.exit_code == 2 and "not a valid integer" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_list_chips_is_list_hardware():
    assert run("list", "chips") == run("list", "hardware")
    assert run("list", "chips", "--format", "json") == run("list", "hardware", "--format", "json")


def test_near_misses_rank_prefixes_first():
    chips = spec_paths("hardware")
    assert near_ids("h100", chips)[:2] == ["h100-sxm", "h100-pcie"]
    assert near_ids("mi300", chips)[0] == "mi300x"
    result = CliRunner().invoke(cli, ["decode", "-m", "llama-3.1-8b", "-c", "h100"])
    assert result.exit_code == 2
    assert "did you mean h100-sxm, h100-pcie" in result.stderr


def test_markdown_is_a_pipe_table():
    text = run(*DECODE, "--format", "markdown")
    assert text.splitlines()[0].startswith("| section")
    assert "| answer" in text and "16.06 GB" in text


class FakeTerminal:
    def __init__(self):
        self.text = ""

    def isatty(self):
        return True

    def write(self, text):
        self.text += text

    def flush(self):
        pass


def test_progress_shows_on_a_terminal_after_its_delay_only():
    from roofline.cli.output import Progress
    terminal = FakeTerminal()
    with Progress("validating rows", total=4, delay=0.0, stream=terminal) as progress:
        for _ in range(4):
            progress.advance()
            progress._last = 0.0  # allow the next redraw at once
    assert "validating rows: 4/4 100%" in terminal.text
    assert terminal.text.endswith("\r")  # the line is cleared when done
    for quiet, delay in ((True, 0.0), (False, 60.0)):
        silent = FakeTerminal()
        with Progress("x", total=2, delay=delay, quiet=quiet, stream=silent) as progress:
            progress.advance()
        assert silent.text == ""


def test_piped_commands_print_no_progress():
    from pathlib import Path
    rows = Path(__file__).resolve().parent.parent / "data" / "validation"
    files = sorted(rows.rglob("*.jsonl"))
    assert files
    result = CliRunner().invoke(cli, ["validate", "-i", str(files[0]), "--format", "json"])
    assert result.exit_code == 0, result.stderr
    assert "validating" not in result.stderr and "\r" not in result.output


def test_results_in_jupyter_have_units_and_4_digits():
    import roofline
    r = roofline.decode("llama-3.1-8b", "h100-sxm")
    html = r._repr_html_()
    assert "16.06 GB" in html and "6.711 ms" in html and "149 tok/s" in html
    assert not RAW_EXPONENT.search(html) and not re.search(r"\d\.\d{6,}", html)  # no 16-digit floats
    assert html.count("6.711 ms") == 1  # step time, token latency and stage time: one number, shown once
    operator = r.operators[0]._repr_html_()
    assert not RAW_EXPONENT.search(operator) and "B</td>" in operator.replace(" ", "")


def test_sweep_ranges_take_counts_like_8k():
    from roofline.cli.analysis_cmd import parse_values
    assert parse_values("1k:4k:1k", "context") == [1000, 2000, 3000, 4000]
    assert parse_values("1:64:x4,8Ki", "batch") == [1, 4, 16, 64, 8192]
    data = json.loads(run("sweep", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--context", "1k,8k", "--format", "json"))
    assert [p["context"] for p in data["points"]] == [1000, 8000]
