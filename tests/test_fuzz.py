"""A fuzzer of roofline's inputs (issue 13): hostile command lines, spec files, config.json files
and measurement files generated from the grammar of each input, each checked against the contract.

The contract, for every input:
- exit status 0, or 1 with a reason on stderr, or 2 with exactly one line `error: ...` (never
  `internal error`: the CLI's last-resort guard firing is a bug found);
- no traceback, and the run finishes within SECONDS;
- with --format json and status 0, standard output is strict JSON (no NaN, no Infinity);
- on an error nothing is written (the working folder and the user data folder stay as they were).

Hypothesis draws the inputs: a grammar per input (options and their kinds of values, the fields of
a spec file and the hostile values YAML allows, the keys of a config.json, the fields of each
measurement row) and a set of hostile values per kind of token. The CI run tries EXAMPLES inputs
per test (a few hundred in all, under a minute); set ROOFLINE_FUZZ_EXAMPLES for a longer run:

    ROOFLINE_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz.py -q -s
"""
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

from roofline.cli import cli
from roofline.specs import builtin_dir

EXAMPLES = int(os.environ.get("ROOFLINE_FUZZ_EXAMPLES", "100"))
#: the longest a run may take [s]: the slowest honest question answers in about one second here; a
#: loaded CI machine gets a factor of 10
SECONDS = 10
CONFIGS = Path(__file__).resolve().parent / "fixtures" / "hf_configs"
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize="ROOFLINE_FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
#: inputs tried this session, per kind of input and exit status
#: the parse cache of the runs (a user cache: not part of "nothing written"), shared by all of them
CACHE = tempfile.mkdtemp(prefix="roofline-fuzz-cache-")
TRIED = {kind: {0: 0, 1: 0, 2: 0} for kind in ("cli", "spec", "config", "measurements")}


@pytest.fixture(scope="module", autouse=True)
def report_inputs_tried():
    """After the module: the count of inputs tried, per kind and exit status, on the terminal."""
    yield
    total = sum(sum(by_status.values()) for by_status in TRIED.values())
    print(f"\nfuzzed inputs tried, by exit status: {TRIED} ({total} in all)", file=sys.__stdout__)


class _Hung(BaseException):
    """Raised by the alarm in a run that exceeds SECONDS (a BaseException: the CLI must not catch it)."""


@contextlib.contextmanager
def _time_limit(seconds):
    def stop(signum, frame):
        raise _Hung(f"ran past {seconds} s")
    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _files(root):
    return sorted((str(p.relative_to(root)), p.stat().st_size) for p in Path(root).rglob("*") if p.is_file())


def check_contract(args, folder, kind, env=None):
    """Run `roofline ARGS` in `folder` (its cwd and user data home; `env` replaces variables) and
    assert the contract."""
    before = _files(folder)
    env = {"XDG_DATA_HOME": str(Path(folder) / "data"), "ROOFLINE_SPECS": None, "XDG_CACHE_HOME": CACHE,
           **(env or {})}
    start = time.perf_counter()
    with contextlib.chdir(folder), _time_limit(SECONDS):
        result = CliRunner().invoke(cli, args, env=env)
    elapsed = time.perf_counter() - start
    shown = f"roofline {' '.join(map(repr, args))}"
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"{shown}: {result.exception!r}"
    assert "Traceback" not in result.stderr, f"{shown}: {result.stderr[-2000:]}"
    assert elapsed < SECONDS, f"{shown}: {elapsed:.1f} s"
    status = result.exit_code
    assert status in (0, 1, 2), f"{shown}: exit status {status}"
    TRIED[kind][status] += 1
    if status == 2:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and len(lines[0]) <= 1100, f"{shown}: {lines}"
    elif status == 1:      # an answer that is not met: the reason is on stderr or in the answer
        assert result.stderr.strip() or result.stdout.strip(), f"{shown}: exit status 1 without a reason"
    else:
        assert "internal error" not in result.stderr
        if "json" in args and "--output" not in args:
            json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"{shown}: {c} in JSON output"))
    if status != 0:
        assert _files(folder) == before, f"{shown}: wrote files on an error"
    return result


# ----------------------------------------------------------------------------- hostile tokens
HUGE = ["9" * 30, str(2 ** 63), str(2 ** 64), "9" * 400]
NUMBERS = st.sampled_from(["0", "-1", "1", "2", "7", "8", "64", "1024", "1e30", "1e309", "-0", "0.5", "1.5",
                           "inf", "-inf", "nan", "1_000", "0x10", "017", "1:30", "1,5", "3 3", "", " ", *HUGE])
TEXTS = st.sampled_from(["", " ", "x" * 300, "../../etc/passwd", "llama-3.1-8b", "h100-sxm", "nope", "a\nb",
                         "Ünïcödé", "\u202e", "*", "?", "[1, 2]", "{a: 1}", "&a", "!!python/object:os.system",
                         "null", "~", "yes", "true", "-", "--help", "NUL\x00"])
QUANTITIES = st.sampled_from(["700 W", "1,5 kW", "3 3 TB/s", "USD/hour", "2,50 USD/hour", "2.5 USD/hour",
                              "1e309 W", "nan W", "-1 W", "0 W", "5", "1 TB/ms", "1 parsec", "1 W W", "W 1",
                              "1e-320 USD/hour", "10 USD/h", "1.0.0 W", "", "x" * 500])
RANGES = st.sampled_from(["1", "1,8,64", "1:64", "1:64:x2", "1024:8192:1024", "1:100000:x1.5", "0:5", "5:1",
                          "1:2:x1", "1:2:x0.5", "1:10:0", "a:b", "1::2", ",", "1,,2", "1:" + "9" * 30, "9" * 400,
                          "1:3:x1e400", "-1"])
MODELS = st.sampled_from(["llama-3.1-8b", "qwen3-235b-a22b", "deepseek-v3", "gemma-3-27b", "mixtral-8x7b",
                          "gpt-oss-20b", "nope", "", "x" * 300, "model_specs/../README.md", "/dev/null"])
CHIPS = st.sampled_from(["h100-sxm", "b200", "wse-3", "a100-sxm", "nope", "", "/etc/hostname", "h100-sxm.yaml"])
SET_FIELDS = st.sampled_from(["num_layers", "hidden_size", "num_heads", "num_kv_heads", "head_dim", "vocab_size",
                              "max_context", "tie_embeddings", "intermediate_size", "attention.sliding_window",
                              "attention.layer_pattern", "moe.num_experts", "moe.experts_per_token",
                              "moe.layer_step", "dtypes.weights", "dtypes.kv_cache", "no_such", "attention",
                              "a.b.c.d", ""])
DTYPES = st.sampled_from(["bf16", "fp8", "int4-g128", "mxfp4", "fp64", "", "bf16,fp8", "BF16", "x" * 200])


#: ordinary values of each kind, drawn half of the time so that runs also get past the first check
ORDINARY = {"number": ["1", "8", "64", "1024", "0.5", "100", "2"], "text": ["llama-3.1-8b", "calibrated", "ideal"],
            "quantity": ["700 W", "2.5 USD/hour", "1 kW"], "range": ["1,8", "1:64:x2", "1024,8192"],
            "model": ["llama-3.1-8b", "qwen3-235b-a22b"], "chip": ["h100-sxm", "b200"], "dtype": ["bf16", "fp8"],
            "small": ["1", "2", "8"]}


def _value_of(kind):
    hostile = {"number": NUMBERS, "text": TEXTS, "quantity": QUANTITIES, "range": RANGES, "model": MODELS,
               "chip": CHIPS, "dtype": DTYPES, "small": SMALL}[kind]
    return st.one_of(st.sampled_from(ORDINARY[kind]), hostile)


#: the grammar of the command lines: command words and the options each takes, with their kinds
SMALL = st.sampled_from(["1", "2", "4", "8", "0", "-1", "3", "16", "1e3", "x"])
OPTIONS = {
    ("decode",): {"--batch": "number", "--context": "number", "--price": "quantity", "--power": "quantity",
                  "--pue": "number", "--calibration": "text", "--weights-dtype": "dtype", "--kv-dtype": "dtype",
                  "--mode": "text", "--memory-tier": "text", "--link": "text", "--speculative": "text",
                  "--draft-tokens": "number", "--acceptance": "number", "--tp": "small", "--pp": "small",
                  "--ep": "small", "--chips": "small", "--microbatches": "small"},
    ("prefill",): {"--batch": "number", "--prompt": "number", "--price": "quantity", "--power": "quantity",
                   "--weights-dtype": "dtype", "--chips": "small", "--tp": "small"},
    ("sweep",): {"--batch": "range", "--context": "range", "--weights-dtype": "dtype", "--mode": "text",
                 "--chips": "small", "--tp": "small"},
    ("explain", "decode"): {"--batch": "number", "--context": "number", "--weights-dtype": "dtype"},
    ("solve", "chips"): {"--tokens-per-s-per-user": "number", "--tokens-per-s": "number", "--batch": "number",
                         "--context": "number", "--max-usd-per-mtok": "number", "--price": "quantity",
                         "--max-chips": "small"},
    ("solve", "batch"): {"--tokens-per-s-per-user": "number", "--context": "number", "--chips": "small"},
    ("solve", "context"): {"--tokens-per-s-per-user": "number", "--batch": "number", "--chips": "small"},
    ("compare",): {"--batch": "number", "--context": "number", "--weights-dtype": "dtype"},
}


@st.composite
def command_lines(draw):
    words = draw(st.sampled_from(sorted(OPTIONS)))
    args = list(words) + ["-m", draw(_value_of("model"))]
    args += ["-c", draw(_value_of("chip"))] + (["-c", draw(_value_of("chip"))] if words == ("compare",) else [])
    options = OPTIONS[words]
    for option in draw(st.lists(st.sampled_from(sorted(options)), max_size=4, unique=True)):
        kind = options[option]
        args += [option, draw(_value_of(kind))]
    if words[0] in ("decode", "prefill", "explain", "sweep") and draw(st.booleans()):
        args += ["--set", f"{draw(SET_FIELDS)}={draw(st.one_of(NUMBERS, TEXTS))}"]
    args += ["--format", draw(st.sampled_from(["json", "table", "csv"]))]
    return [a.replace("\x00", "") for a in args]


#: values of the environment variables roofline reads: a folder name too long, a file, nothing, a
#: folder that cannot be written
ENVIRONMENTS = st.sampled_from([{}, {}, {}, {"ROOFLINE_SPECS": "a" * 5000}, {"ROOFLINE_SPECS": "/etc/hostname"},
                                {"ROOFLINE_SPECS": ""}, {"XDG_DATA_HOME": "/" + "a" * 5000},
                                {"XDG_DATA_HOME": "/etc/hostname"}, {"ROOFLINE_SPECS": "::::"},
                                {"XDG_CACHE_HOME": "/etc/hostname"}, {"XDG_CACHE_HOME": "/" + "a" * 5000},
                                {"XDG_CACHE_HOME": "/proc"}])


@FUZZ
@given(command_lines(), ENVIRONMENTS)
def test_command_lines(args, env):
    with tempfile.TemporaryDirectory() as folder:
        check_contract(args, folder, "cli", env)


# ----------------------------------------------------------------------------- spec files
#: hostile YAML values a field may be given (as YAML text)
YAML_VALUES = st.sampled_from([
    "1:30", "017", "0x20", "yes", "on", "~", "null", "''", "1e999", ".inf", "-.nan", "-1", "0", "1e30",
    "9" * 40, "[1, 2]", "{value: 1}", "{value: 80 GB}", "{value: 80 GB, source: nowhere}", "3 3 TB/s", "1,5 TB/s",
    "TB/s", "80 GB", "!!python/object/apply:os.system [echo]", "!!binary aGk=", "&a [*a]", "*undefined",
    "{<<: {value: 1}}", "2024-01-01", "true", "\"\\x00\"", "'" + "x" * 2000 + "'", "[[[[[[[[[[1]]]]]]]]]]",
    "{? [a]: 1}", "|\n  text\n  block", ">-\n  folded", "1", "64", "{value: 81 GB, source: nvidia-h100-datasheet}",
    "4096", "false"])
SPEC_FILES = {"model": builtin_dir("model") / "llama-3.1-8b.yaml", "hardware": builtin_dir("hardware") / "h100-sxm.yaml",
              "moe": builtin_dir("model") / "qwen3-235b-a22b.yaml"}


def _field_lines(text):
    return [i for i, line in enumerate(text.splitlines()) if ":" in line and not line.lstrip().startswith("#")]


@st.composite
def spec_files(draw):
    kind = draw(st.sampled_from(sorted(SPEC_FILES)))
    lines = SPEC_FILES[kind].read_text().splitlines()
    for _ in range(draw(st.integers(0, 3))):
        mutation = draw(st.sampled_from(["value", "delete", "duplicate", "insert", "truncate", "indent"]))
        lines = "\n".join(lines).splitlines() or [""]
        candidates = _field_lines("\n".join(lines)) or [0]
        index = draw(st.sampled_from(candidates))
        line = lines[index]
        key, _, _ = line.partition(":")
        if mutation == "value":
            lines[index] = f"{key}: {draw(YAML_VALUES)}"
        elif mutation == "delete":
            del lines[index]
        elif mutation == "duplicate":
            lines.insert(index, line)
        elif mutation == "insert":
            lines.insert(index, f"{key.strip()}x: {draw(YAML_VALUES)}" if draw(st.booleans())
                         else f"? {draw(YAML_VALUES)}\n: 1")
        elif mutation == "truncate":
            lines = lines[:index] + [line[: draw(st.integers(0, len(line)))]]
        else:
            lines[index] = "\t" + line
    text = "\n".join(lines) + "\n"
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-8-sig", "utf-16", "latin-1"]))
    return kind, text.encode(encoding, errors="replace")


@FUZZ
@given(spec_files(), st.sampled_from(["show", "decode"]))
def test_spec_files(spec, command):
    kind, raw = spec
    with tempfile.TemporaryDirectory() as folder:
        stem = SPEC_FILES[kind].stem
        path = Path(folder) / f"{stem}.yaml"
        path.write_bytes(raw)
        if command == "show":
            args = ["show", str(path), "--format", "json"]
        elif kind == "hardware":
            args = ["decode", "-m", "llama-3.1-8b", "-c", str(path), "--format", "json"]
        else:
            args = ["decode", "-m", str(path), "-c", "h100-sxm", "--format", "json"]
        check_contract(args, folder, "spec")


# ----------------------------------------------------------------------------- config.json
JSON_VALUES = st.sampled_from([
    "NaN", "Infinity", "-Infinity", "1e400", "9" * 5000, "-1", "0", "0.5", "1e30", "null", "true", "\"bfloat16\"",
    "[\"bfloat16\"]", "[\"a\", 1]", "[]", "{}", "5", "\"5\"", "[" * 50 + "]" * 50, "\"" + "x" * 5000 + "\"",
    "[0, 1, 0, 1]", "[\"sliding_attention\", \"full_attention\"]", "{\"quant_method\": [\"fp8\"]}",
    "{\"quant_method\": \"gptq\", \"bits\": \"4\"}", "2147483648", "1.0"])
CONFIG_FILES = sorted(CONFIGS.glob("*.json"))
CONFIG_KEYS = sorted({key for path in CONFIG_FILES for key in json.loads(path.read_text())}
                     | {"no_rope_layers", "layer_types", "mlp_only_layers", "text_config", "quantization_config"})


@st.composite
def config_files(draw):
    path = draw(st.sampled_from(CONFIG_FILES))
    data = json.loads(path.read_text())
    text = json.dumps(data, indent=1)
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(CONFIG_KEYS))
        value = draw(JSON_VALUES)
        if draw(st.booleans()) or key not in data:
            text = text.replace("{", f"{{\"{key}\": {value},", 1)
        else:
            text = text.replace(f"\"{key}\": {json.dumps(data[key])}", f"\"{key}\": {value}", 1)
    if draw(st.integers(0, 9)) == 0:
        text = text[: draw(st.integers(0, len(text)))]
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-8-sig", "utf-16"]))
    return text.encode(encoding)


@FUZZ
@given(config_files(), st.sampled_from(["folder", "file", "none", "empty"]), ENVIRONMENTS)
def test_config_files(raw, output, env):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "in" / "config.json"
        path.parent.mkdir()
        path.write_bytes(raw)
        (Path(folder) / "out").mkdir()
        args = ["model", "import", str(path), "--id", "fuzzed", "--format", "json"]
        args += {"folder": ["--output", str(Path(folder) / "out")], "empty": ["--output", ""],
                 "file": ["--output", str(Path(folder) / "out" / "fuzzed.yaml")], "none": []}[output]
        check_contract(args, folder, "config", env)


# ----------------------------------------------------------------------------- measurement files
ROW_FIELDS = {"copy": ["bytes_moved"], "read_reduce": ["bytes_moved"], "matmul": ["m", "n", "k", "dtype"],
              "linear": ["batch", "k", "n", "dtype"], "decode_step": ["model", "layers", "batch", "ctx", "dtype"],
              "prefill": ["model", "batch", "prompt", "dtype"]}
GOOD = {"bytes_moved": "1e9", "m": "4096", "n": "4096", "k": "4096", "batch": "8", "ctx": "1024", "prompt": "512",
        "layers": "4", "dtype": "\"bf16\"", "model": "\"llama-3.1-8b\"", "seconds": "0.01"}
CSV_COLUMNS = ["model", "hardware", "num_chips", "parallelism", "precision", "batch_or_concurrency", "input_len",
               "output_len", "metric", "value", "unit", "source_url", "notes"]
CSV_GOOD = ["Llama-3.1-8B", "NVIDIA H100", "1", "TP=1", "bf16", "1", "1024", "128",
            "decode_tokens_per_s_per_user", "100", "tok/s", "https://example.org", ""]
CSV_CELLS = st.sampled_from(["", "0", "-1", "nan", "inf", "1e400", "9" * 5000, "100000000000000", "8 (TP=8)",
                             "TP=8 PP=2", "TP=0", "TP=" + "9" * 30, "int4 weight-only G=32", "fp64", "not stated",
                             "tok/s", "ms", "inter_token_latency_ms", "\"a,b\"", "x" * 300, "speculative"])


@st.composite
def jsonl_files(draw):
    lines = ['{"kind": "device", "device": "NVIDIA H100 80GB HBM3"}'] if draw(st.booleans()) else []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(sorted(ROW_FIELDS) + ["linear_fp8", "nope", "copy_skipped"]))
        fields = {name: GOOD[name] for name in ["seconds", *ROW_FIELDS.get(kind, [])]}
        for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=2, unique=True)):
            fields[name] = draw(st.one_of(JSON_VALUES, st.sampled_from(["1e-320", "\"fast\"", "0.0"])))
        body = ", ".join(f"\"{k}\": {v}" for k, v in fields.items() if v is not None)
        device = "" if lines else ', "device": "NVIDIA H100 80GB HBM3"'
        lines.append(f'{{"kind": "{kind}", {body}{device}}}')
    text = "\n".join(lines) + "\n"
    return ".jsonl", text.encode(draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16"])))


@st.composite
def csv_files(draw):
    row = list(CSV_GOOD)
    for index in draw(st.lists(st.integers(0, len(row) - 1), max_size=3, unique=True)):
        row[index] = draw(CSV_CELLS)
    text = ",".join(CSV_COLUMNS) + "\n" + ",".join(row) + "\n"
    return ".csv", text.encode(draw(st.sampled_from(["utf-8", "utf-8-sig"])))


@FUZZ
@given(st.one_of(jsonl_files(), csv_files()), st.sampled_from([[], ["-c", "h100-sxm"], ["--calibration", "nope"]]))
def test_measurement_files(measurements, options):
    suffix, raw = measurements
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"rows{suffix}"
        path.write_bytes(raw)
        check_contract(["validate", "-i", str(path), *options, "--format", "json"], folder, "measurements")
