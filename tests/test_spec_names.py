"""Models found by their Hugging Face ids, chips by their common system names (issue 11: rows map without a hand table)."""
import csv

import pytest
import yaml

from roofline.errors import RooflineError, SpecError
from roofline.hardware import chip_aliases, load_hardware
from roofline.models import find_model, hf_id_index, load_model
from roofline.specs import builtin_dir

from conftest import CHIPS, MODELS, ROOT, one_line_error, run

pytestmark = pytest.mark.usefixtures("no_user_specs")

SERVING_CSV = ROOT / "data" / "validation" / "serving" / "h100_sxm_serving.csv"
#: the checkpoints of the serving benchmark rows (issue 11), with the architecture each must find
SERVING_MODELS = {"Qwen/Qwen3-32B": "qwen3-32b", "meta-llama/Llama-3.1-8B-Instruct": "llama-3.1-8b",
                  "Qwen/Qwen3-235B-A22B-FP8": "qwen3-235b-a22b", "deepseek-ai/DeepSeek-R1": "deepseek-v3",
                  "openai/gpt-oss-120b": "gpt-oss-120b", "meta-llama/Llama-3.1-70B": "llama-3.1-70b",
                  "MiniMaxAI/MiniMax-M2.5": "minimax-m2.5", "deepseek-ai/DeepSeek-V3": "deepseek-v3"}
#: the system names the serving benchmarks use (issue 11), with the chip spec each names
SYSTEMS = {"h100_sxm": "h100-sxm", "h200_sxm": "h200", "b200_sxm": "b200", "gb200": "gb200", "b300_sxm": "b300",
           "gb300": "gb300"}


def test_every_row_of_the_serving_benchmark_names_a_shipped_model_and_chip():
    with open(SERVING_CSV, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) > 900
    assert {row["model_path"] for row in rows} == set(SERVING_MODELS)
    assert {row["system"] for row in rows} <= set(SYSTEMS)


@pytest.mark.parametrize("hf_id, model_id", sorted(SERVING_MODELS.items()))
def test_serving_benchmark_models_are_found_by_hf_id(hf_id, model_id):
    assert find_model(hf_id).id == model_id


@pytest.mark.parametrize("system, chip_id", sorted(SYSTEMS.items()))
def test_serving_benchmark_systems_are_found_by_name(system, chip_id):
    assert load_hardware(system).id == chip_id


def test_every_hf_id_names_one_model_and_every_alias_one_chip():
    listed = [hf_id.lower() for model_id in MODELS for hf_id in load_model(model_id).hf_ids]
    assert len(listed) == len(set(listed)) == len(hf_id_index())
    assert set(hf_id_index().values()) == set(MODELS)        # every shipped model lists its checkpoints
    aliases = [alias for chip_id in CHIPS for alias in load_hardware(chip_id).aliases]
    assert len(aliases) == len(set(aliases)) == len(chip_aliases())
    assert not set(aliases) & set(CHIPS)                      # an alias never shadows another chip's id


def test_find_model_ignores_case_and_takes_ids():
    assert find_model("qwen/qwen3-235b-a22b-fp8").id == "qwen3-235b-a22b"
    assert find_model("glm-5").id == "glm-5"
    assert find_model("deepseek-ai/DeepSeek-R1", {"num_layers": 30}).num_layers == 30


def test_an_unknown_hf_id_suggests_the_nearest():
    with pytest.raises(RooflineError, match="no model spec lists the Hugging Face id 'Qwen/Qwen3-23B'.*qwen/qwen3-32b"):
        find_model("Qwen/Qwen3-23B")
    with pytest.raises(RooflineError, match="unknown model id 'qwen3-33b'"):
        find_model("qwen3-33b")


def test_a_chip_alias_and_an_hf_id_work_on_the_command_line():
    result = run("decode", "-m", "meta-llama/Llama-3.1-8B-Instruct", "-c", "h100_sxm", "--format", "json")
    assert result.exit_code == 0, result.output
    assert '"hardware": "h100-sxm"' in result.output and '"model": "llama-3.1-8b"' in result.output
    one_line_error(run("decode", "-m", "meta-llama/Llama-3.1-9B", "-c", "h100-sxm"),
                   "no model spec lists the Hugging Face id 'meta-llama/Llama-3.1-9B'")


@pytest.mark.parametrize("kind, field, value, problem", [
    ("model", "hf_ids", "Qwen/Qwen3-32B", "expected a list of names"),
    ("model", "hf_ids", ["Qwen3-32B"], "is not a Hugging Face id"),
    ("model", "hf_ids", ["Qwen/Qwen3-32B", "Qwen/Qwen3-32B"], "lists a name twice"),
    ("hardware", "aliases", [""], "expected a list of names"),
])
def test_bad_names_in_a_spec_are_one_line_errors(tmp_path, kind, field, value, problem):
    base = {"model": "qwen3-32b", "hardware": "h100-sxm"}[kind]
    data = yaml.safe_load((builtin_dir(kind) / f"{base}.yaml").read_text())
    data[field] = value
    path = tmp_path / f"{base}-x.yaml"
    path.write_text(yaml.safe_dump(data))
    data["id"] = path.stem
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError, match=problem):
        (load_model if kind == "model" else load_hardware)(str(path))
    option = {"model": ("-m", str(path), "-c", "h100-sxm"), "hardware": ("-m", "llama-3.1-8b", "-c", str(path))}[kind]
    one_line_error(run("decode", *option), field, problem)


@pytest.mark.parametrize("hf_id, model_id", [
    ("nvidia/Llama-3.3-70B-Instruct-FP8", "llama-3.1-70b"),        # NVIDIA's ModelOpt re-releases
    ("nvidia/DeepSeek-R1-0528-FP4-v2", "deepseek-v3"),
    ("nvidia/DeepSeek-R1-FP4", "deepseek-v3"),
    ("RedHatAI/Llama-3.1-8B-Instruct-FP8-dynamic", "llama-3.1-8b"),
    ("amd/Llama-3.1-405B-Instruct-FP8-KV", "llama-3.1-405b"),
])
def test_a_quantized_re_release_maps_to_its_architecture(hf_id, model_id):
    """Serving benchmarks on newer chips run quantized checkpoints other organisations publish as
    `<listed name>-<quantization>`: they map without listing each one."""
    assert find_model(hf_id).id == model_id


def test_a_name_that_only_shares_a_quantization_suffix_is_not_mapped():
    with pytest.raises(RooflineError, match="no model spec lists"):
        find_model("someone/Unknown-Model-70B-FP8")
