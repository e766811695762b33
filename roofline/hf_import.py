"""Hugging Face config.json -> model spec file (`roofline model import`).

`spec_from_config` maps the keys of a transformers config to the fields of docs/spec-format.md
(a pure function of the parsed JSON); roofline.model_import adds the parameter counts and writes
the file. No network: only the local file is read.

Key meanings follow the transformers configuration classes of each family (LlamaConfig,
MistralConfig, MixtralConfig, Qwen2/Qwen3/Qwen3MoeConfig, DeepseekV3Config, Glm4MoeConfig,
GptOssConfig, Gemma3TextConfig, Llama4TextConfig): where a config omits a key, the class default
is used and the spec says so (source `hf-defaults`).
"""
from .errors import SpecError, excerpt
from .models import LIMITS, WIDTH_LIMIT
from .readers import read_json

#: architectures[0] -> family; the family decides what the config's keys mean
FAMILIES = {
    "LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral", "MixtralForCausalLM": "mixtral",
    "Qwen2ForCausalLM": "qwen2", "Qwen3ForCausalLM": "qwen3", "Qwen3MoeForCausalLM": "qwen3_moe",
    "DeepseekV3ForCausalLM": "deepseek_v3", "DeepseekV32ForCausalLM": "deepseek_v3",
    "Glm4MoeForCausalLM": "glm4_moe", "GptOssForCausalLM": "gpt_oss",
    "Gemma3ForCausalLM": "gemma3", "Gemma3ForConditionalGeneration": "gemma3",
    "Llama4ForCausalLM": "llama4", "Llama4ForConditionalGeneration": "llama4",
}

#: transformers class defaults for keys that released configs omit, per family
CLASS_DEFAULTS = {
    "gemma3": {"vocab_size": 262208, "max_position_embeddings": 131072, "sliding_window_pattern": 6,
               "tie_word_embeddings": True},
    "mistral": {"sliding_window": 4096},
    "gpt_oss": {"attention_bias": True},
    "llama4": {"no_rope_layer_interval": 4, "interleave_moe_layer_step": 1},
}
CLASS_NAMES = {"llama": "LlamaConfig", "mistral": "MistralConfig", "mixtral": "MixtralConfig",
               "qwen2": "Qwen2Config", "qwen3": "Qwen3Config", "qwen3_moe": "Qwen3MoeConfig",
               "deepseek_v3": "DeepseekV3Config", "glm4_moe": "Glm4MoeConfig", "gpt_oss": "GptOssConfig",
               "gemma3": "Gemma3TextConfig", "llama4": "Llama4TextConfig"}

TORCH_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}
LAYER_TYPES = {"full_attention": "G", "sliding_attention": "L", "chunked_attention": "L"}
COMPUTED = "computed from the architecture by roofline model import"
#: the largest config.json read [bytes] (released configs are a few kB)
MAX_CONFIG_BYTES = 4_000_000


class _Config:
    """The config's keys, read with the checks and messages of a spec file (file: key: what)."""

    def __init__(self, data, path, family, prefix=""):
        self.data, self.path, self.family, self.prefix = data, path, family, prefix
        self.comments = {}        # spec field -> HF key(s) it came from
        self.defaulted = set()    # HF keys taken from the class defaults

    def fail(self, key, what):
        raise SpecError(self.path, f"{self.prefix}{key}: {what}")

    def has(self, key):
        return self.data.get(key) is not None

    def get(self, key, expected, default=None, required=True):
        """The value of `key`; if absent the class default (an explicit null stays null), else `default`.

        SpecError if there is no value and `required`.
        """
        if self.data.get(key) is not None:
            return self.data[key]
        if key not in self.data and key in CLASS_DEFAULTS.get(self.family, {}):
            self.defaulted.add(key)
            return CLASS_DEFAULTS[self.family][key]
        if default is not None or not required:
            return default
        self.fail(key, f"missing; expected {expected}")

    def count(self, key, expected, default=None, required=True, minimum=1):
        value = self.get(key, expected, default, required)
        if value is None:
            return None
        maximum = LIMITS["num_layers"] if key == "num_hidden_layers" else WIDTH_LIMIT
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < minimum:
            self.fail(key, f"{excerpt(value)} is not valid; expected {expected} (a whole number >= {minimum})")
        if value > maximum:
            self.fail(key, f"{value:.6g} is more than the limit of {maximum:,}")
        return int(value)

    def flag(self, key, default=False):
        value = self.get(key, "true or false", default=default)
        if not isinstance(value, bool):
            self.fail(key, f"{excerpt(value)} is not valid; expected true or false")
        return value


def read_config(path):
    """The parsed config.json (a mapping); SpecError naming the file on unreadable or malformed JSON."""
    data = read_json(path, "a Hugging Face config.json", MAX_CONFIG_BYTES)
    if not isinstance(data, dict):
        raise SpecError(path, "expected a JSON object (a Hugging Face config.json)")
    return data


def family_of(data, path):
    """(family, architecture) of a config; SpecError for a missing or unsupported architecture."""
    archs = data.get("architectures")
    if not isinstance(archs, list) or not archs or not isinstance(archs[0], str):
        raise SpecError(path, "architectures: missing; expected a list naming the model class, "
                              "e.g. [\"LlamaForCausalLM\"]")
    if archs[0] not in FAMILIES:
        raise SpecError(path, f"architectures: {excerpt(archs[0])} is not supported; expected one of "
                              f"{', '.join(sorted(FAMILIES))}")
    return FAMILIES[archs[0]], archs[0]


def spec_from_config(data, path, model_id, name=None):
    """(spec, comments): the model spec mapping of a parsed config.json, without `params`.

    `spec` follows docs/spec-format.md (numbers from the config are bare and carry the default
    source `hf-config`; derived and defaulted numbers say so); `comments` maps a spec field to the
    config key(s) it came from, for the written file.
    """
    family, architecture = family_of(data, path)
    text = data.get("text_config") if family in ("gemma3", "llama4") else None
    if text is not None and not isinstance(text, dict):
        raise SpecError(path, "text_config: expected a mapping")
    cfg = _Config(text if text is not None else data, path, family, "text_config." if text is not None else "")
    spec = {"id": model_id, "name": name or str(data.get("_name_or_path") or model_id).rstrip("/").split("/")[-1],
            "architecture": architecture, "source": "hf-config"}
    comments = cfg.comments
    hidden = cfg.count("hidden_size", "the model width")
    heads = cfg.count("num_attention_heads", "the number of query heads")
    spec["num_layers"] = cfg.count("num_hidden_layers", "the number of decoder layers")
    spec["hidden_size"] = hidden
    spec["num_heads"] = heads
    comments.update(num_layers="num_hidden_layers", num_heads="num_attention_heads")
    attention = _attention(cfg, spec, heads, hidden)
    moe, dense = _moe(cfg)
    spec["intermediate_size"] = dense
    spec["ffn"] = "gated"
    comments["ffn"] = "SwiGLU / GeGLU: gate, up and down projections"
    spec["vocab_size"] = _maybe_default(cfg, "vocab_size", cfg.count("vocab_size", "the vocabulary size"))
    spec["tie_embeddings"] = cfg.flag("tie_word_embeddings", default=False)
    defaulted = " (class default)" if "tie_word_embeddings" in cfg.defaulted else ""
    comments["tie_embeddings"] = "tie_word_embeddings" + defaulted
    spec["max_context"] = _maybe_default(cfg, "max_position_embeddings",
                                         cfg.count("max_position_embeddings", "the longest context in tokens"))
    comments["max_context"] = "max_position_embeddings"
    if attention:
        spec["attention"] = attention
    if moe:
        spec["moe"] = moe
    mtp = cfg.count("num_nextn_predict_layers", "the number of MTP layers", required=False, minimum=0)
    if mtp:
        spec["mtp_layers"] = mtp
        comments["mtp_layers"] = "num_nextn_predict_layers (not counted in num_layers)"
    spec["dtypes"] = _dtypes(cfg, data, bool(moe))
    return spec, comments


def _maybe_default(cfg, key, value):
    """`value`, marked as a transformers class default when the config omitted `key`."""
    if key in cfg.defaulted:
        return {"value": value, "source": "hf-defaults",
                "note": f"not in the config; the {CLASS_NAMES[cfg.family]} default"}
    return value


def _attention(cfg, spec, heads, hidden):
    """Fill num_kv_heads and head_dim into `spec`; return the `attention` mapping (or {})."""
    family, comments = cfg.family, cfg.comments
    attention = {}
    mla = family == "deepseek_v3" or cfg.has("kv_lora_rank")
    if mla:
        nope = cfg.count("qk_nope_head_dim", "the non-RoPE part of a query/key head")
        rope = cfg.count("qk_rope_head_dim", "the RoPE part of a query/key head")
        spec["num_kv_heads"] = {"value": heads, "derived": "MLA: num_kv_heads is written as num_heads (spec format)"}
        spec["head_dim"] = {"value": nope + rope, "derived": f"qk_nope_head_dim + qk_rope_head_dim = {nope} + {rope}"}
        attention["kind"] = "mla"
        attention["q_lora_rank"] = cfg.count("q_lora_rank", "the query compression rank", required=False) or 0
        attention["kv_lora_rank"] = cfg.count("kv_lora_rank", "the KV compression rank")
        attention["qk_nope_head_dim"], attention["qk_rope_head_dim"] = nope, rope
        attention["v_head_dim"] = cfg.count("v_head_dim", "the value head size")
        if cfg.has("index_topk"):
            attention["sparse"] = {"index_topk": cfg.count("index_topk", "tokens each query reads"),
                                   "index_heads": cfg.count("index_n_heads", "the indexer's heads"),
                                   "index_head_dim": cfg.count("index_head_dim", "the indexer's head size"),
                                   "index_dtype": "fp8"}
            comments["attention.sparse.index_dtype"] = "the indexer key cache is fp8 (DeepSeek-V3.2 inference code)"
        return attention
    kv = cfg.count("num_key_value_heads", "the number of KV heads", required=False)
    if kv is None:
        spec["num_kv_heads"] = {"value": heads, "derived": "num_key_value_heads absent: multi-head attention"}
        kv = heads
    else:
        spec["num_kv_heads"] = kv
    if heads % kv:
        cfg.fail("num_key_value_heads", f"{kv} does not divide num_attention_heads {heads}")
    head_dim = cfg.count("head_dim", "the per-head size", required=False)
    if head_dim is None:
        if hidden % heads:
            cfg.fail("head_dim", f"missing and hidden_size {hidden} is not a multiple of num_attention_heads {heads}")
        head_dim = {"value": hidden // heads, "derived": f"hidden_size / num_attention_heads = {hidden} / {heads}"}
    spec["head_dim"] = head_dim
    comments["num_kv_heads"] = "num_key_value_heads"
    bias = cfg.flag("attention_bias") if family != "qwen2" else True
    if bias:
        attention["qkv_bias"] = True
        comments["attention.qkv_bias"] = "Qwen2 always has q/k/v biases" if family == "qwen2" else "attention_bias"
        if family in ("llama", "mistral", "qwen3", "qwen3_moe", "gpt_oss"):
            attention["o_bias"] = True
            comments["attention.o_bias"] = "attention_bias also biases o_proj in this family"
    if family in ("qwen3", "qwen3_moe", "gemma3") or (family in ("glm4_moe", "llama4") and cfg.flag("use_qk_norm")):
        attention["qk_norm"] = True
        comments["attention.qk_norm"] = "use_qk_norm" if family in ("glm4_moe", "llama4") else \
            "per-head RMSNorm on q and k (architecture)"
    if family == "gpt_oss":
        attention["learned_sinks"] = True
        comments["attention.learned_sinks"] = "one learned sink logit per head (architecture)"
    attention.update(_windows(cfg, spec["num_layers"]))
    return attention


def _windows(cfg, layers):
    """sliding_window / window_kind / layer_pattern of the attention mapping ({} if all global)."""
    family, comments = cfg.family, cfg.comments
    if family in ("llama", "deepseek_v3", "glm4_moe"):
        return {}
    if family in ("qwen2", "qwen3", "qwen3_moe") and not cfg.flag("use_sliding_window"):
        return {}
    if family == "llama4":
        window = cfg.count("attention_chunk_size", "the attention chunk of the RoPE layers in tokens")
        kinds = cfg.get("layer_types", "a list of layer types", required=False)
        if kinds is None and cfg.has("no_rope_layers"):
            flags = cfg.get("no_rope_layers", "a list of 0/1 per layer")
            if not isinstance(flags, list) or any(x not in (0, 1) or isinstance(x, float) for x in flags):
                cfg.fail("no_rope_layers", f"{excerpt(flags)} is not valid; expected a list of 0 or 1, one per layer")
            kinds = ["chunked_attention" if x else "full_attention" for x in flags]
        if kinds is None:
            every = cfg.count("no_rope_layer_interval", "the interval of the NoPE global layers")
            kinds = ["chunked_attention" if (i + 1) % every else "full_attention" for i in range(layers)]
        pattern, source = _pattern(cfg, kinds, layers), "layer_types / no_rope_layers"
        comments["attention.sliding_window"] = "attention_chunk_size"
        result = {"window_kind": "chunked", "sliding_window": window}
    else:
        window = cfg.count("sliding_window", "the window of the local layers in tokens", required=False)
        if window is None:
            return {}
        kinds = cfg.get("layer_types", "a list of layer types", required=False)
        if kinds is not None:
            pattern, source = _pattern(cfg, kinds, layers), "layer_types"
        elif family == "gemma3":
            every = cfg.count("sliding_window_pattern", "the period of the global layers")
            pattern, source = "L" * (every - 1) + "G", "sliding_window_pattern"
        elif family in ("qwen2", "qwen3", "qwen3_moe"):
            first = cfg.count("max_window_layers", "the number of leading full-attention layers", minimum=0)
            pattern, source = "G" * min(first, layers) + "L" * max(layers - first, 0), "max_window_layers"
        elif family == "gpt_oss":
            pattern, source = "LG", "GptOssConfig default layer_types (even layers sliding)"
        else:
            pattern, source = "L", "sliding_window on every layer"
        comments["attention.sliding_window"] = "sliding_window" + (" (class default)" if "sliding_window"
                                                                   in cfg.defaulted else "")
        result = {"sliding_window": _maybe_default(cfg, "sliding_window", window)}
    if "L" not in pattern:
        return {}
    comments["attention.layer_pattern"] = f"{source} (L local, G global, repeated over the layers)"
    result["layer_pattern"] = pattern
    return result


def _pattern(cfg, kinds, layers):
    """The shortest L/G pattern that, repeated, gives the per-layer attention types."""
    if not isinstance(kinds, list) or len(kinds) != layers:
        cfg.fail("layer_types", f"expected a list of {layers} layer types (one per layer)")
    letters = []
    for kind in kinds:
        if not isinstance(kind, str) or kind not in LAYER_TYPES:
            cfg.fail("layer_types", f"{excerpt(kind)} is not supported; expected one of {', '.join(LAYER_TYPES)}")
        letters.append(LAYER_TYPES[kind])
    text = "".join(letters)
    for period in range(1, layers + 1):      # text has period p when it equals itself shifted by p
        if text[period:] == text[:layers - period]:
            return text[:period]


def _moe(cfg):
    """(moe mapping or {}, intermediate_size of the dense layers)."""
    family, comments = cfg.family, cfg.comments
    dense_size = lambda key="intermediate_size": cfg.count(key, "the FFN size of the dense layers")  # noqa: E731
    if family in ("llama", "mistral", "qwen2", "qwen3", "gemma3"):
        return {}, dense_size()
    moe, first_dense, step = {}, 0, 1
    if family in ("mixtral", "gpt_oss"):
        moe["num_experts"] = cfg.count("num_local_experts", "the number of routed experts")
        per_token = "num_experts_per_tok" if cfg.has("num_experts_per_tok") else "experts_per_token"
        moe["experts_per_token"] = cfg.count(per_token, "the experts each token uses")
        moe["expert_intermediate_size"] = cfg.count("intermediate_size", "the FFN size of one expert")
        comments.update({"moe.num_experts": "num_local_experts", "moe.expert_intermediate_size": "intermediate_size"})
        if family == "gpt_oss":
            moe["router_bias"] = moe["expert_bias"] = True
            comments["moe.router_bias"] = "router and expert biases (architecture)"
    elif family == "qwen3_moe":
        moe["num_experts"] = cfg.count("num_experts", "the number of routed experts")
        moe["experts_per_token"] = cfg.count("num_experts_per_tok", "the experts each token uses")
        moe["expert_intermediate_size"] = cfg.count("moe_intermediate_size", "the FFN size of one expert")
        step = cfg.count("decoder_sparse_step", "the MoE layer interval", default=1)
        only = cfg.get("mlp_only_layers", "a list of dense layers", default=[])
        if not isinstance(only, list) or any(type(x) is not int for x in only) or sorted(only) != list(range(len(only))):
            cfg.fail("mlp_only_layers", f"{excerpt(only)} is not supported; expected the first k layers [0, 1, ..., k-1]")
        first_dense = len(only)
        comments.update({"moe.first_dense_layers": "mlp_only_layers", "moe.layer_step": "decoder_sparse_step"})
    elif family in ("deepseek_v3", "glm4_moe"):
        moe["num_experts"] = cfg.count("n_routed_experts", "the number of routed experts")
        moe["experts_per_token"] = cfg.count("num_experts_per_tok", "the experts each token uses")
        moe["expert_intermediate_size"] = cfg.count("moe_intermediate_size", "the FFN size of one expert")
        moe["num_shared_experts"] = cfg.count("n_shared_experts", "the number of shared experts", minimum=0)
        first_dense = cfg.count("first_k_dense_replace", "the number of leading dense layers", default=0, minimum=0)
        if cfg.count("moe_layer_freq", "the MoE layer interval", default=1) != 1:
            cfg.fail("moe_layer_freq", "only 1 (every layer after first_k_dense_replace is MoE) is supported")
        comments.update({"moe.num_experts": "n_routed_experts", "moe.num_shared_experts": "n_shared_experts",
                         "moe.first_dense_layers": "first_k_dense_replace"})
    else:  # llama4: one shared expert of the expert size beside the routed ones
        moe["num_experts"] = cfg.count("num_local_experts", "the number of routed experts")
        moe["experts_per_token"] = cfg.count("num_experts_per_tok", "the experts each token uses")
        moe["expert_intermediate_size"] = cfg.count("intermediate_size", "the FFN size of one expert")
        moe["num_shared_experts"] = 1
        step = cfg.count("interleave_moe_layer_step", "the MoE layer interval")
        comments.update({"moe.num_shared_experts": "one shared expert per MoE layer (architecture)",
                         "moe.layer_step": "interleave_moe_layer_step"})
    comments.setdefault("moe.expert_intermediate_size", "moe_intermediate_size")
    if moe["experts_per_token"] > moe["num_experts"]:
        cfg.fail("num_experts_per_tok", f"{moe['experts_per_token']} exceeds the {moe['num_experts']} experts")
    if first_dense:
        moe["first_dense_layers"] = first_dense
    if step != 1:
        moe["layer_step"] = step
    has_dense = first_dense > 0 or step > 1
    if not has_dense:
        comments["intermediate_size"] = "every layer is MoE: no dense FFN"
        return moe, 0
    key = "intermediate_size_mlp" if family == "llama4" else "intermediate_size"
    comments["intermediate_size"] = f"{key}: the FFN of the dense layers"
    return moe, dense_size(key)


def _dtypes(cfg, data, is_moe):
    """Native dtype per tensor class from torch_dtype / dtype and quantization_config."""
    raw = cfg.data.get("torch_dtype") or cfg.data.get("dtype") or data.get("torch_dtype") or data.get("dtype")
    cfg.comments["dtypes"] = f"torch_dtype {raw}"
    if raw is None:  # gpt-oss ships without one; its unquantized tensors are bf16
        raw = "bfloat16"
        cfg.comments["dtypes"] = "torch_dtype absent: bf16 assumed (check the checkpoint)"
    if not isinstance(raw, str) or raw not in TORCH_DTYPES:
        raise SpecError(cfg.path, f"torch_dtype: {excerpt(raw)} is not supported; expected one of "
                                  f"{', '.join(TORCH_DTYPES)}")
    base = TORCH_DTYPES[raw]
    dtypes = {"weights": base, "kv_cache": base, "activations": base}
    quant = data.get("quantization_config")
    if quant is None:
        return dtypes
    method = quant.get("quant_method") if isinstance(quant, dict) else None
    if method in ("fp8", "fbgemm_fp8"):
        dtypes["weights"] = "fp8"
    elif method == "mxfp4":
        dtypes["experts" if is_moe else "weights"] = "mxfp4"
    elif method in ("gptq", "awq") and quant.get("bits") == 4 and quant.get("group_size") == 128:
        dtypes["weights"] = "int4-g128"
    else:
        raise SpecError(cfg.path, f"quantization_config.quant_method: {excerpt(method)} is not supported; expected fp8, "
                                  "mxfp4, or gptq/awq with bits 4 and group_size 128")
    cfg.comments["dtypes"] += f"; quantization_config.quant_method {method}"
    return dtypes
