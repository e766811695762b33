"""Model specs: the architecture numbers that set weight bytes, KV bytes and FLOPs per token.

Loaded from model_specs/<id>.yaml (format in docs/spec-format.md). `load_model(id, overrides)`
applies what-if overrides (`--set num_layers=20`, `--set attention.sliding_window=4096`) to the
file's fields before the same checks run, so an override is validated like the file itself.
"""
import difflib
import math
import os
import re
from dataclasses import dataclass, field, replace

from .dtypes import check as check_dtype
from .errors import RooflineError, SpecError, excerpt
from .readers import parse_yaml
from .specs import check_id, file_reader, load_yaml, resolve, spec_paths

ATTENTION_KINDS = ("gqa", "mla")
FFN_KINDS = ("gated", "plain")
WINDOW_KINDS = ("sliding", "chunked")

#: every field `--set` may change: top level, attention.*, moe.*, dtypes.*
TOP_FIELDS = ("name", "architecture", "num_layers", "hidden_size", "num_heads", "num_kv_heads", "head_dim",
              "intermediate_size", "ffn", "vocab_size", "tie_embeddings", "max_context", "mtp_layers")
ATTENTION_FIELDS = ("kind", "q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim",
                    "sliding_window", "window_kind", "layer_pattern", "sink_tokens", "learned_sinks",
                    "qkv_bias", "o_bias", "qk_norm", "sparse")
SPARSE_FIELDS = ("index_topk", "index_heads", "index_head_dim", "index_dtype")
MOE_FIELDS = ("num_experts", "experts_per_token", "expert_intermediate_size", "num_shared_experts",
              "shared_intermediate_size", "first_dense_layers", "layer_step", "router_bias", "expert_bias")
DTYPE_FIELDS = ("weights", "experts", "kv_cache", "activations")

#: upper limits of model fields, far beyond any published model (the deepest has under 200 layers,
#: the widest vocabulary 262k, the longest context 10M tokens): a larger value is a typo or a
#: hostile input, refused with the limit in the message instead of computed for minutes
LIMITS = {"num_layers": 10_000, "mtp_layers": 10_000, "max_context": 1_000_000_000, "vocab_size": 100_000_000,
          "num_heads": 1_000_000, "num_kv_heads": 1_000_000, "num_experts": 1_000_000,
          "experts_per_token": 1_000_000, "num_shared_experts": 1_000_000, "first_dense_layers": 10_000,
          "layer_step": 10_000, "sink_tokens": 1_000_000_000, "sliding_window": 1_000_000_000,
          "index_topk": 1_000_000_000, "index_heads": 1_000_000}
#: limit of every other whole-number field (widths and ranks)
WIDTH_LIMIT = 100_000_000
#: the largest batch [sequences] and context [tokens] a question may ask about
MAX_BATCH = 1_000_000_000
MAX_CONTEXT = LIMITS["max_context"]


@dataclass(frozen=True)
class SparseIndexer:
    """Sparse top-k attention (DeepSeek-V3.2 DSA): an indexer scores every cached token, the
    attention then reads only the top-k."""
    index_topk: int
    index_heads: int
    index_head_dim: int
    index_dtype: str = "fp8"


@dataclass(frozen=True)
class Attention:
    kind: str = "gqa"                 # gqa (MHA/GQA/MQA by num_kv_heads) | mla
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    sliding_window: int = None        # [tokens] window of the local layers
    window_kind: str = "sliding"
    layer_pattern: str = "G"          # L = local (windowed), G = global, cyclic over layers
    sink_tokens: int = 0
    learned_sinks: bool = False
    qkv_bias: bool = False
    o_bias: bool = False
    qk_norm: bool = False
    sparse: SparseIndexer = None


@dataclass(frozen=True)
class MoE:
    num_experts: int
    experts_per_token: int
    expert_intermediate_size: int
    num_shared_experts: int = 0
    shared_intermediate_size: int = 0
    first_dense_layers: int = 0
    layer_step: int = 1
    router_bias: bool = False
    expert_bias: bool = False


@dataclass(frozen=True)
class Model:
    id: str
    name: str
    architecture: str
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    ffn: str
    vocab_size: int
    tie_embeddings: bool
    max_context: int
    dtypes: dict                      # weights, experts, kv_cache, activations -> dtype name
    attention: Attention = Attention()
    moe: MoE = None
    mtp_layers: int = 0
    params_total: float = None        # officially stated
    params_active: float = None
    hf_ids: tuple = ()                # Hugging Face ids of checkpoints with this architecture
    facts: tuple = ()
    sources: dict = field(default_factory=dict, compare=False)
    path: str = None

    # -- layer composition: which layers are local/global and dense/MoE -----------------------
    def is_local(self, layer):
        pattern = self.attention.layer_pattern
        return self.attention.sliding_window is not None and pattern[layer % len(pattern)] == "L"

    def is_moe(self, layer):
        moe = self.moe
        return moe is not None and layer >= moe.first_dense_layers and (layer + 1) % moe.layer_step == 0

    @property
    def layer_groups(self):
        """{(local: bool, moe: bool): number of layers}: identical layers are computed once."""
        return self.layer_counts(0, self.num_layers)

    def layer_counts(self, start, stop):
        """{(local, moe): number of layers} among layers start .. stop-1, in order of first appearance.

        Counted arithmetically: past the leading dense layers, a layer's kind repeats with the period
        P = lcm(len(layer_pattern), layer_step), so each of the first P layers of a range stands for
        ceil((stop - layer) / P) layers; the work grows with P, not with the number of layers.
        """
        pattern = len(self.attention.layer_pattern) if self.attention.sliding_window is not None else 1
        step = self.moe.layer_step if self.moe is not None else 1
        first = min(max(self.moe.first_dense_layers if self.moe is not None else 0, start), stop)
        period = pattern * step // math.gcd(pattern, step)
        groups = {}
        for low, high in ((start, first), (first, stop)):
            for layer in range(low, min(high, low + period)):
                key = (self.is_local(layer), self.is_moe(layer))
                groups[key] = groups.get(key, 0) + (high - layer + period - 1) // period
        return groups

    @property
    def num_local_layers(self):
        return sum(n for (local, _), n in self.layer_groups.items() if local)

    @property
    def num_moe_layers(self):
        return sum(n for (_, moe), n in self.layer_groups.items() if moe)


def _apply_overrides(data, overrides):
    """A copy of the raw spec mapping with `overrides` {dotted field: text value} applied."""
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    allowed = {**{f: None for f in TOP_FIELDS}, "attention": ATTENTION_FIELDS, "moe": MOE_FIELDS,
               "dtypes": DTYPE_FIELDS}
    for dotted, text in overrides.items():
        parts = dotted.split(".")
        head = parts[0]
        if head not in allowed or (len(parts) > 1 and (allowed[head] is None or parts[1] not in allowed[head])) \
                or (len(parts) == 1 and allowed[head] is not None) or len(parts) > 3 \
                or (len(parts) == 3 and (parts[:2] != ["attention", "sparse"] or parts[2] not in SPARSE_FIELDS)):
            fields = ", ".join([*TOP_FIELDS, *(f"attention.{f}" for f in ATTENTION_FIELDS),
                                *(f"moe.{f}" for f in MOE_FIELDS), *(f"dtypes.{f}" for f in DTYPE_FIELDS)])
            raise RooflineError(f"--set {dotted[:60]}: no such model field; fields: {fields}")
        try:
            value = parse_yaml(text, f"--set {dotted}") if isinstance(text, str) else text
        except SpecError:
            value = text
        if isinstance(value, (dict, list)):
            raise RooflineError(f"--set {dotted}={excerpt(text)}: expected one number, word or true/false")
        target = data
        for part in parts[:-1]:
            if not isinstance(target.get(part), dict):
                target[part] = {}
            else:
                target[part] = dict(target[part])
            target = target[part]
        old = target.get(parts[-1])
        if isinstance(old, dict) and "value" in old:
            target[parts[-1]] = {**old, "value": value, "note": f"set on the command line (was {old['value']})"}
        else:
            target[parts[-1]] = {"value": value, "source": "--set"} if not isinstance(value, (str, bool)) else value
    return data


def load_model(name, overrides=None):
    """Model spec by id (model_specs/<id>.yaml), path or Hugging Face id (`Qwen/Qwen3-32B`, from the
    specs' hf_ids), with optional field overrides."""
    path = resolve("model", _spec_name(name))
    data = load_yaml(path)
    if overrides:
        data = _apply_overrides(data, overrides)
        data.setdefault("sources", {})
        if isinstance(data["sources"], dict):
            data["sources"] = {**data["sources"], "--set": "value set on the command line"}
        try:
            return _read_model(data, path)
        except SpecError as exc:
            field_name = exc.what.split(":", 1)[0]
            if field_name in overrides:
                raise RooflineError(f"--set {field_name}={str(overrides[field_name])[:60]}: "
                                    f"{exc.what.split(': ', 1)[1]}") from None
            raise
    return _read_model(data, path)


def hf_id_index():
    """{Hugging Face id, lower case: model id} from the `hf_ids:` of every model spec."""
    found = {}
    for model_id, path in spec_paths("model").items():
        hf_ids = load_yaml(path).get("hf_ids")
        for hf_id in hf_ids if isinstance(hf_ids, list) else ():
            found[str(hf_id).lower()] = model_id
    return found


#: what a quantized re-release appends to a checkpoint's name (nvidia/Llama-3.3-70B-Instruct-FP8,
#: nvidia/DeepSeek-R1-0528-FP4-v2, RedHatAI/...-FP8-dynamic, ...-AWQ, ...-GPTQ-Int4, ...-W4A16)
_QUANT_SUFFIX = re.compile(r"(-(fp8|fp4|nvfp4|mxfp4|int4|int8|awq|gptq|w8a8|w4a16|w4a8|dynamic|kv|v\d+))+$")


def _repackaged(hf_id, index):
    """The model id of a quantized re-release of a listed checkpoint, by its repository name: an
    organisation other than the original (or the same) publishing `<listed name>-<quantization>`.
    Only a name that matches one architecture is taken; the weights' dtype is the caller's to set."""
    name = _QUANT_SUFFIX.sub("", hf_id.split("/", 1)[1].lower())
    found = {model_id for listed, model_id in index.items()
             if _QUANT_SUFFIX.sub("", listed.split("/", 1)[-1]) == name}
    return found.pop() if len(found) == 1 else None


def find_model(name, overrides=None):
    """Model by roofline id, spec file, or a Hugging Face id that a spec lists under `hf_ids`
    (`deepseek-ai/DeepSeek-R1` finds deepseek-v3; case does not matter). The same as load_model,
    which takes all three; named for what it is used for: mapping a checkpoint to its architecture."""
    return load_model(name, overrides)


def _spec_name(name):
    """`name`, or the id of the model spec that lists it under hf_ids when it is a Hugging Face id
    (organisation/name, not a .yaml file on disk); RooflineError for an unknown one."""
    text = str(name)
    if "/" not in text or text.endswith((".yaml", ".yml")) or os.path.exists(text):
        return name
    index = hf_id_index()
    if text.lower() in index:
        return index[text.lower()]
    repackaged = _repackaged(text, index)
    if repackaged is not None:
        return repackaged
    near = difflib.get_close_matches(text.lower(), index, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(near)}?" if near else ""
    raise RooflineError(f"no model spec lists the Hugging Face id '{text}' under hf_ids{hint} (roofline list models)")


def model_from_data(data, path):
    """A Model from an already-parsed spec mapping; `path` names it in errors (its stem is the id)."""
    return _read_model(data, path)


def _limited(reader):
    """`reader.count` refusing a value above the field's limit (LIMITS, else WIDTH_LIMIT)."""
    def count(key, **options):
        return reader.count(key, maximum=LIMITS.get(key, WIDTH_LIMIT), **options)
    return count


def _read_model(data, path):
    reader = file_reader(data, path)
    model_id = check_id(reader, path)
    count = _limited(reader)
    values = dict(
        id=model_id, name=reader.text("name"), architecture=reader.text("architecture"),
        num_layers=count("num_layers"), hidden_size=count("hidden_size"), num_heads=count("num_heads"),
        num_kv_heads=count("num_kv_heads"), head_dim=count("head_dim"),
        intermediate_size=count("intermediate_size", allow_zero=True),
        ffn=reader.text("ffn", choices=FFN_KINDS), vocab_size=count("vocab_size"),
        tie_embeddings=reader.flag("tie_embeddings", required=True), max_context=count("max_context"),
        mtp_layers=count("mtp_layers", required=False, default=0, allow_zero=True))
    if values["num_heads"] % values["num_kv_heads"]:
        reader._fail("num_kv_heads", f"{values['num_kv_heads']} does not divide num_heads {values['num_heads']}")
    values["attention"] = _read_attention(reader.sub("attention", required=False))
    values["moe"] = _read_moe(reader.sub("moe", required=False))
    dtypes = reader.sub("dtypes")
    values["dtypes"] = {}
    for key in DTYPE_FIELDS:
        text = dtypes.text(key, required=key != "experts")
        if text is not None:
            try:
                check_dtype(text)
            except RooflineError as exc:
                dtypes._fail(key, str(exc))
            values["dtypes"][key] = text
    values["dtypes"].setdefault("experts", values["dtypes"]["weights"])
    dtypes.finish()
    params = reader.sub("params")
    values["params_total"] = params.quantity("total", "count")
    values["params_active"] = params.quantity("active", "count", required=False)
    params.finish()
    values["hf_ids"] = reader.texts("hf_ids")
    for hf_id in values["hf_ids"]:
        if hf_id.count("/") != 1 or hf_id.strip() != hf_id:
            reader._fail("hf_ids", f"'{hf_id}' is not a Hugging Face id (expected organisation/name)")
    reader.finish()
    return Model(**values, facts=tuple(reader.facts), sources=reader.sources, path=str(path))


def _read_attention(reader):
    if reader is None:
        return Attention()
    count = _limited(reader)
    kind = reader.text("kind", required=False, default="gqa", choices=ATTENTION_KINDS)
    mla = {}
    for key in ("q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"):
        mla[key] = count(key, required=(kind == "mla" and key != "q_lora_rank"), default=0, allow_zero=True)
    window = count("sliding_window", required=False)
    pattern = reader.text("layer_pattern", required=False, default="L" if window else "G")
    if len(pattern) > LIMITS["num_layers"]:
        reader._fail("layer_pattern", f"{len(pattern)} letters; at most {LIMITS['num_layers']:,}")
    if set(pattern) - {"L", "G"}:
        reader._fail("layer_pattern", f"'{pattern}' may hold only L (local) and G (global)")
    if "L" in pattern and window is None:
        reader._fail("layer_pattern", "has local layers (L) but no sliding_window")
    sparse_reader = reader.sub("sparse", required=False)
    sparse = None
    if sparse_reader is not None:
        index_dtype = sparse_reader.text("index_dtype", required=False, default="fp8")
        try:
            check_dtype(index_dtype)
        except RooflineError as exc:
            sparse_reader._fail("index_dtype", str(exc))
        sparse_count = _limited(sparse_reader)
        sparse = SparseIndexer(index_topk=sparse_count("index_topk"), index_heads=sparse_count("index_heads"),
                               index_head_dim=sparse_count("index_head_dim"), index_dtype=index_dtype)
        sparse_reader.finish()
    attention = Attention(
        kind=kind, **mla, sliding_window=window,
        window_kind=reader.text("window_kind", required=False, default="sliding", choices=WINDOW_KINDS),
        layer_pattern=pattern, sink_tokens=count("sink_tokens", required=False, default=0, allow_zero=True),
        learned_sinks=reader.flag("learned_sinks"), qkv_bias=reader.flag("qkv_bias"),
        o_bias=reader.flag("o_bias"), qk_norm=reader.flag("qk_norm"), sparse=sparse)
    reader.finish()
    return attention


def _read_moe(reader):
    if reader is None:
        return None
    count = _limited(reader)
    expert = count("expert_intermediate_size")
    moe = MoE(num_experts=count("num_experts"), experts_per_token=count("experts_per_token"),
              expert_intermediate_size=expert,
              num_shared_experts=count("num_shared_experts", required=False, default=0, allow_zero=True),
              shared_intermediate_size=count("shared_intermediate_size", required=False, default=expert),
              first_dense_layers=count("first_dense_layers", required=False, default=0, allow_zero=True),
              layer_step=count("layer_step", required=False, default=1),
              router_bias=reader.flag("router_bias"), expert_bias=reader.flag("expert_bias"))
    if moe.experts_per_token > moe.num_experts:
        reader._fail("experts_per_token", f"{moe.experts_per_token} exceeds num_experts {moe.num_experts}")
    reader.finish()
    return moe


def with_dtypes(model, **dtypes):
    """The model with some tensor-class dtypes replaced (weights, experts, kv_cache, activations).

    Setting `weights` also sets `experts` unless `experts` is given.
    """
    new = dict(model.dtypes)
    for key, value in dtypes.items():
        if value is not None:
            new[key] = check_dtype(value, f"{key.replace('_', '-')} dtype")
    if dtypes.get("weights") and not dtypes.get("experts"):
        new["experts"] = new["weights"]
    return replace(model, dtypes=new)
