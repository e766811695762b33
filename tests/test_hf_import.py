"""`roofline model import`: real config.json files give the stated parameter counts and the same
layer groups, KV bytes per token and weight bytes as the shipped spec of the same model.

Fixtures and their provenance: tests/fixtures/hf_configs/README.md. Parameter counts are compared
by the rule of stated_params.py (one tolerance, what each stated figure includes).
"""
import json
from pathlib import Path

import pytest
import yaml

from roofline.hf_import import spec_from_config
from roofline.model_import import default_id, import_config
from roofline.memory import kv_bytes_per_token, weight_bytes
from roofline.models import load_model, model_from_data
from roofline.params import count_params
from stated_params import (DEFAULT_INCLUDES, STATED_INCLUDES, TOLERANCE, expected_active,
                           expected_total, relative_error)
from conftest import ROOT, one_line_error, run

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "hf_configs"

#: fixture -> shipped spec of the same model (its stated params and architecture are the reference)
SAME_AS_SHIPPED = {"llama-3.1-8b": "llama-3.1-8b", "qwen3-32b": "qwen3-32b", "qwen3-235b-a22b": "qwen3-235b-a22b",
                   "mixtral-8x7b": "mixtral-8x7b", "gpt-oss-20b": "gpt-oss-20b", "gemma-3-27b-it": "gemma-3-27b",
                   "deepseek-r1": "deepseek-v3"}
#: fixtures without a shipped spec: (total, active) as stated on the model card (README of the fixtures)
STATED = {"qwen2.5-7b": (7.61e9, None), "qwen3-30b-a3b": (30.5e9, 3.3e9)}


@pytest.fixture(autouse=True)
def user_dir(tmp_path, monkeypatch):
    """An empty user spec folder per test; imports land in it."""
    monkeypatch.delenv("ROOFLINE_SPECS", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "roofline" / "model_specs"


def imported(name, tmp_path):
    """Import fixture `name` into tmp_path/out; the loaded Model (read back from the written file)."""
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    path, _ = import_config(FIXTURES / f"{name}.json", output=out)
    return load_model(str(path))


@pytest.mark.parametrize("name", sorted(SAME_AS_SHIPPED))
def test_import_matches_shipped_spec(name, tmp_path):
    model, shipped = imported(name, tmp_path), load_model(SAME_AS_SHIPPED[name])
    assert model.layer_groups == shipped.layer_groups
    assert kv_bytes_per_token(model) == kv_bytes_per_token(shipped)
    assert weight_bytes(model) == pytest.approx(weight_bytes(shipped), rel=1e-12)
    assert model.dtypes == shipped.dtypes
    # the written params are the computed ones; against the officially stated figures of the shipped
    # spec, by the rule the shipped spec is checked with (what its stated figures include)
    assert model.params_total == count_params(model).total
    includes = STATED_INCLUDES.get(shipped.id, DEFAULT_INCLUDES)
    assert abs(relative_error(expected_total(model, includes), shipped.params_total)) <= TOLERANCE
    if shipped.params_active:
        assert model.params_active == count_params(model).active
        assert abs(relative_error(expected_active(model, includes), shipped.params_active)) <= TOLERANCE


@pytest.mark.parametrize("name", sorted(STATED))
def test_import_gives_stated_params(name, tmp_path):
    model = imported(name, tmp_path)
    total, active = STATED[name]
    assert abs(relative_error(model.params_total, total)) <= TOLERANCE
    if active:
        assert abs(relative_error(model.params_active, active)) <= TOLERANCE


def test_written_file_says_params_are_computed(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    path, model = import_config(FIXTURES / "mixtral-8x7b.json", output=out)
    data = yaml.safe_load(path.read_text())
    assert data["params"]["total"]["source"] == "computed"
    assert "roofline model import" in data["params"]["total"]["derived"]
    assert data["params"]["active"]["source"] == "computed"
    assert data["sources"]["hf-config"] == (FIXTURES / "mixtral-8x7b.json").relative_to(ROOT).as_posix()
    assert "not an official figure" in path.read_text()
    assert model.params_active == pytest.approx(12.9e9, rel=TOLERANCE)  # Mistral AI: 12.9B per token


def test_default_output_is_found_by_id(user_dir):
    result = run("model", "import", FIXTURES / "qwen3-30b-a3b.json")
    assert result.exit_code == 0, result.output
    assert (user_dir / "qwen3-30b-a3b.yaml").is_file()
    assert run("show", "qwen3-30b-a3b").exit_code == 0
    decode = run("decode", "--model", "qwen3-30b-a3b", "--hardware", "h100-sxm", "--format", "json")
    assert decode.exit_code == 0 and json.loads(decode.output)["tokens_per_s"] > 0


def test_default_id_of_a_cache_snapshot(tmp_path):
    snapshot = tmp_path / "models--Qwen--Qwen3-32B" / "snapshots" / ("a" * 40) / "config.json"
    assert default_id(snapshot) == "qwen3-32b"
    assert default_id(tmp_path / "Mistral-7B-v0.1" / "config.json") == "mistral-7b-v0.1"


# -- families without a fixture: hand-written configs in HF key names --------------------------

BASE = {"hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 4, "intermediate_size": 128,
        "vocab_size": 1000, "max_position_embeddings": 4096, "torch_dtype": "bfloat16"}


def mapped(config, tmp_path):
    """Model of a config dict (spec_from_config + the reader), without writing a file."""
    spec, _ = spec_from_config(config, tmp_path / "config.json", "m")
    return model_from_data({**spec, "params": {"total": {"value": 1, "source": "hf-config"}},
                            "sources": {"hf-config": "test"}}, Path("m.yaml"))


def test_mistral_window_on_every_layer(tmp_path):
    model = mapped({**BASE, "architectures": ["MistralForCausalLM"], "sliding_window": 4096}, tmp_path)
    assert model.attention.sliding_window == 4096 and model.num_local_layers == 4
    no_window = mapped({**BASE, "architectures": ["MistralForCausalLM"], "sliding_window": None}, tmp_path)
    assert no_window.attention.sliding_window is None  # an explicit null is not the class default
    spec, _ = spec_from_config({**BASE, "architectures": ["MistralForCausalLM"]}, tmp_path / "c.json", "m")
    assert spec["attention"]["sliding_window"]["source"] == "hf-defaults"  # MistralConfig default 4096


def test_glm4_moe(tmp_path):
    config = {**BASE, "architectures": ["Glm4MoeForCausalLM"], "head_dim": 32, "num_key_value_heads": 2,
              "attention_bias": True, "use_qk_norm": True, "n_routed_experts": 8, "num_experts_per_tok": 2,
              "moe_intermediate_size": 16, "n_shared_experts": 1, "first_k_dense_replace": 1,
              "num_nextn_predict_layers": 1}
    model = mapped(config, tmp_path)
    a = model.attention
    assert (a.qkv_bias, a.o_bias, a.qk_norm) == (True, False, True)  # Glm4Moe: no bias on o_proj
    assert model.moe.first_dense_layers == 1 and model.num_moe_layers == 3 and model.mtp_layers == 1
    assert model.intermediate_size == 128 and model.head_dim == 32


def test_deepseek_v32_indexer(tmp_path):
    config = {**BASE, "architectures": ["DeepseekV32ForCausalLM"], "q_lora_rank": 32, "kv_lora_rank": 16,
              "qk_nope_head_dim": 8, "qk_rope_head_dim": 4, "v_head_dim": 8, "n_routed_experts": 8,
              "num_experts_per_tok": 2, "moe_intermediate_size": 16, "n_shared_experts": 1,
              "first_k_dense_replace": 1, "index_topk": 2048, "index_n_heads": 64, "index_head_dim": 128,
              "quantization_config": {"quant_method": "fp8"}}
    model = mapped(config, tmp_path)
    assert model.attention.kind == "mla" and model.head_dim == 12 and model.num_kv_heads == 4
    sparse = model.attention.sparse
    assert (sparse.index_topk, sparse.index_heads, sparse.index_head_dim) == (2048, 64, 128)
    assert model.dtypes["weights"] == "fp8" and model.dtypes["kv_cache"] == "bf16"


def test_llama4_chunked_attention_and_interleaved_moe(tmp_path):
    text = {**BASE, "num_hidden_layers": 8, "attention_chunk_size": 8192, "num_local_experts": 16,
            "num_experts_per_tok": 1, "intermediate_size_mlp": 256, "interleave_moe_layer_step": 2}
    model = mapped({"architectures": ["Llama4ForConditionalGeneration"], "text_config": text}, tmp_path)
    a = model.attention
    assert (a.window_kind, a.sliding_window, a.layer_pattern) == ("chunked", 8192, "LLLG")
    assert model.moe.layer_step == 2 and model.num_moe_layers == 4 and model.intermediate_size == 256
    assert model.moe.num_shared_experts == 1 and model.moe.expert_intermediate_size == 128


def test_qwen2_sliding_window_only_when_used(tmp_path):
    config = {**BASE, "architectures": ["Qwen2ForCausalLM"], "sliding_window": 1024, "max_window_layers": 2}
    assert mapped({**config, "use_sliding_window": False}, tmp_path).attention.sliding_window is None
    used = mapped({**config, "use_sliding_window": True}, tmp_path)
    assert used.attention.layer_pattern == "GGLL" and used.num_local_layers == 2
    assert used.attention.qkv_bias and not used.attention.o_bias  # Qwen2: q/k/v biases, none on o_proj


# -- bad input --------------------------------------------------------------------------------

def write(tmp_path, text, name="config.json"):
    path = tmp_path / "cfg" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def test_unsupported_architecture(tmp_path, user_dir):
    path = write(tmp_path, json.dumps({**BASE, "architectures": ["FalconForCausalLM"]}))
    one_line_error(run("model", "import", path), path, "architectures", "FalconForCausalLM", "is not supported",
                   "LlamaForCausalLM")
    assert not user_dir.exists() or not any(user_dir.iterdir())


def test_malformed_json(tmp_path):
    path = write(tmp_path, '{"architectures": ["LlamaForCausalLM"],')
    one_line_error(run("model", "import", path), path, "malformed JSON", "line 1")


def test_missing_key(tmp_path):
    config = {k: v for k, v in BASE.items() if k != "hidden_size"}
    path = write(tmp_path, json.dumps({**config, "architectures": ["LlamaForCausalLM"]}))
    one_line_error(run("model", "import", path), path, "hidden_size", "missing", "expected")


def test_invalid_key_value(tmp_path):
    path = write(tmp_path, json.dumps({**BASE, "num_hidden_layers": "32", "architectures": ["LlamaForCausalLM"]}))
    one_line_error(run("model", "import", path), path, "num_hidden_layers", "whole number")


def test_text_config_errors_name_the_nested_key(tmp_path):
    text = {k: v for k, v in BASE.items() if k != "num_attention_heads"}
    path = write(tmp_path, json.dumps({"architectures": ["Gemma3ForConditionalGeneration"], "text_config": text}))
    one_line_error(run("model", "import", path), path, "text_config.num_attention_heads", "missing")


def test_layout_the_format_cannot_express(tmp_path):
    config = {**BASE, "architectures": ["Qwen3MoeForCausalLM"], "num_experts": 8, "num_experts_per_tok": 2,
              "moe_intermediate_size": 16, "mlp_only_layers": [2]}
    path = write(tmp_path, json.dumps(config))
    one_line_error(run("model", "import", path), path, "mlp_only_layers", "first k layers")


def test_unsupported_quantization(tmp_path, user_dir):
    config = {**BASE, "architectures": ["LlamaForCausalLM"], "quantization_config": {"quant_method": "bitsandbytes"}}
    path = write(tmp_path, json.dumps(config))
    one_line_error(run("model", "import", path), path, "quantization_config.quant_method", "bitsandbytes")
    assert not user_dir.exists() or not any(user_dir.iterdir())  # nothing written on error


def test_existing_output_needs_force(tmp_path, user_dir):
    user_dir.mkdir(parents=True)
    existing = user_dir / "qwen3-32b-mine.yaml"
    existing.write_text("my own spec\n")
    args = ("model", "import", FIXTURES / "qwen3-32b.json", "--id", "qwen3-32b-mine")
    one_line_error(run(*args), existing, "already exists", "--force")
    assert existing.read_text() == "my own spec\n"
    assert sorted(p.name for p in user_dir.iterdir()) == ["qwen3-32b-mine.yaml"]  # no temp file left
    assert run(*args, "--force").exit_code == 0
    assert load_model("qwen3-32b-mine").num_layers == 64


def test_shipped_id_is_not_shadowed_without_force(user_dir):
    one_line_error(run("model", "import", FIXTURES / "llama-3.1-8b.json"), "llama-3.1-8b", "shipped model")
    assert not user_dir.exists() or not any(user_dir.iterdir())


def test_output_file_name_must_be_the_id(tmp_path):
    one_line_error(run("model", "import", FIXTURES / "qwen3-32b.json", "--id", "a", "--output", tmp_path / "b.yaml"),
                   "--output", "a.yaml")


def test_config_file_that_does_not_exist(tmp_path):
    one_line_error(run("model", "import", tmp_path / "nope.json"), "nope.json", "cannot read")
