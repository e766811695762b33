"""roofline measure on a CPU with tiny shapes: the script runs end to end and writes rows that
roofline's measurement reader accepts and the model can predict."""
import json

import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from roofline import measure  # noqa: E402
from roofline.cli import cli  # noqa: E402
from roofline.hardware import load_hardware  # noqa: E402
from roofline.measurements import read_measurements  # noqa: E402
from roofline.predict import row_model  # noqa: E402
from roofline.step import ceilings  # noqa: E402

TINY_DENSE = """id: {id}
name: Tiny test model
architecture: TinyForCausalLM
source: test
num_layers: 2
hidden_size: 64
num_heads: 4
num_kv_heads: 2
head_dim: 16
intermediate_size: 128
ffn: gated
vocab_size: 256
tie_embeddings: false
max_context: 4096
{extra}dtypes: {{weights: bf16, kv_cache: bf16, activations: bf16}}
params:
  total: {{value: 1e5, source: test}}
sources:
  test: "a tiny shape for tests"
"""
MOE = ("attention: {sliding_window: 16, layer_pattern: LG}\n"
       "moe: {num_experts: 8, experts_per_token: 2, expert_intermediate_size: 32, num_shared_experts: 1}\n")


def _spec(tmp_path, name, extra=""):
    path = tmp_path / f"{name}.yaml"
    path.write_text(TINY_DENSE.format(id=name, extra=extra))
    return path


@pytest.mark.parametrize("name, extra", [("tiny-dense", ""), ("tiny-moe", MOE)])
def test_tiny_run_writes_rows_the_reader_accepts(tmp_path, monkeypatch, name, extra):
    monkeypatch.chdir(tmp_path)      # rows name the spec relative to the working directory, never absolutely
    spec = _spec(tmp_path, name, extra)
    out = tmp_path / "out.jsonl"
    assert measure.run(measure.Options(model=str(spec), tiny=True, out=str(out), reps=2)) == 0
    header = json.loads(out.read_text().splitlines()[0])
    assert header["kind"] == "device" and header["device"] == "cpu" and header["torch"] == torch.__version__
    data = read_measurements(out)
    kinds = {r.kind for r in data.rows}
    assert kinds == {"copy", "read_reduce", "matmul", "linear", "decode_step", "prefill"}
    assert all(r.seconds > 0 for r in data.rows)
    steps = [r for r in data.rows if r.is_step]
    assert {r.layers for r in steps} == {1, 2}          # full and half depth: per-layer vs per-step costs
    assert all(r.model == spec.name for r in steps)
    hardware = load_hardware("h100-sxm")               # the rows are predictable (the model path resolves)
    for row in steps:
        assert row_model(row, hardware).time(ceilings(hardware, "ideal")) > 0


def test_mla_models_are_refused_with_a_skip_row(tmp_path):
    out = tmp_path / "mla.jsonl"
    assert measure.run(measure.Options(model="deepseek-v3", tiny=True, out=str(out), skip_kernels=True)) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[-1]["kind"] == "decode_skipped" and "supports GQA attention; deepseek-v3 uses mla" in lines[-1]["reason"]


def test_cli_measure_passes_its_options_through(tmp_path):
    spec = _spec(tmp_path, "tiny-cli")
    out = tmp_path / "cli.jsonl"
    result = CliRunner().invoke(cli, ["measure", "--model", str(spec), "--tiny", "--out", str(out), "--reps", "2",
                                      "--skip-kernels"])
    assert result.exit_code == 0, result.output
    assert {r.kind for r in read_measurements(out).rows} == {"decode_step", "prefill"}


def test_quiet_prints_no_rows(tmp_path):
    spec = _spec(tmp_path, "tiny-quiet")
    out = tmp_path / "quiet.jsonl"
    result = CliRunner().invoke(cli, ["measure", "-m", str(spec), "--tiny", "-o", str(out), "--reps", "2",
                                      "--skip-kernels", "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and read_measurements(out).rows
