"""Serving engines: scheduler limits and the fixed costs a served step pays beyond the forward pass.

An engine (vLLM, SGLang, TensorRT-LLM) runs continuous batching: each step takes the running
sequences' decodes plus chunks of new prompts up to a token budget. What sets its behaviour here:

- ``max_batched_tokens`` [tokens]: the token budget of one step (vLLM ``max_num_batched_tokens``,
  SGLang ``chunked_prefill_size``, TensorRT-LLM ``max_num_tokens``); a longer prompt is chunked.
- ``max_sequences`` [1]: the most sequences running at once (``max_num_seqs``,
  ``max_running_requests``, ``max_batch_size``).
- ``memory_fraction`` [1]: the share of the chip's memory the engine may use for weights, KV
  cache and activations (``gpu_memory_utilization``, ``mem_fraction_static``,
  ``free_gpu_memory_fraction`` applied to what the weights leave).
- ``block_size`` [tokens]: KV-cache page; a sequence holds whole pages.
- ``fraction_of_free``: True where ``memory_fraction`` is a share of the memory the weights leave
  free (TensorRT-LLM), False where it is a share of the whole chip (vLLM, SGLang).
- ``mixed_prefill``: True where prompt chunks share steps with the decodes (vLLM V1, TensorRT-LLM);
  False where a step runs either prefill or decode (SGLang's default: mixed chunks are opt-in,
  ``--enable-mixed-chunk``), so a prefill stalls the decodes for its whole time.
- ``moe_exchange``: how the tokens of data-parallel attention groups reach the routed experts
  (layouts with ep > tp): "alltoall", DeepEP's dispatch and combine (the default here), or
  "allgather": every rank gathers every token before the MoE and the results are
  reduce-scattered after (NCCL rings; roofline.deployment.communication), what the engines do
  when no all-to-all kernel is switched on (TensorRT-LLM: fused_moe_cutlass.py allgathers the
  tokens and reducescatters the output under attention DP without all-to-all, which only its
  WIDEEP backend enables; SGLang: dp_attention gathers the groups' tokens unless
  --moe-a2a-backend deepep). A deployment sets it (serving.benchmarks: FILE.deployments.yaml).
- ``reserve_full_sequence``: True where the scheduler admits a request only when the KV cache of
  its whole ISL + OSL fits (TensorRT-LLM's GUARANTEED_NO_EVICT); False where pages are taken as
  tokens come (vLLM, SGLang: a sequence holds ISL + OSL/2 on average).

The fixed costs (calibrated, per engine; in seconds) stand for host work the forward pass does not
contain: ``step_overhead`` per scheduler step (scheduling, input preparation, the sampler launch,
the host-device sync), ``sequence_overhead`` per scheduled sequence per step (sampling,
detokenizing and streaming one token of one request), ``request_overhead`` per request, paid
once before its first token (HTTP handling, tokenization, admission), and ``eager_layer_overhead``
per decoder layer of a step that carries prompt tokens: decode-only steps replay captured CUDA
graphs, a step with a prefill chunk launches its kernels from the host one by one (TensorRT-LLM's
PyTorch backend captures generation-only batches; SGLang's prefill ("extend") runs without graphs),
so its host launch time, about the kernels of a layer times a launch, is paid per layer. They are fitted on the H100
serving rows (roofline.serving.fit) and stored with their provenance in
``calibrations/engines/<chip>.yaml``; a chip without its own file uses those of h100-sxm and says so.
"""
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import RooflineError
from ..specs import builtin_dir, load_yaml
from ..units import to_si

#: the engine a command uses when none is named (documented in docs/serving.md)
DEFAULT_ENGINE = "vllm"


@dataclass(frozen=True)
class Engine:
    name: str
    max_batched_tokens: int
    max_sequences: int
    memory_fraction: float
    block_size: int
    reserve_full_sequence: bool = False
    fraction_of_free: bool = False    # memory_fraction applies to what the weights leave
    mixed_prefill: bool = True        # prompt chunks ride in the decode steps (else prefill steps of their own)
    moe_exchange: str = "alltoall"    # attention groups' tokens to the experts: "alltoall" or "allgather"
    step_overhead: float = 0.0        # [s] per step
    sequence_overhead: float = 0.0    # [s] per scheduled sequence per step
    request_overhead: float = 0.0     # [s] per request, before its first token
    eager_layer_overhead: float = 0.0  # [s] per decoder layer of a step that carries prompt tokens
    source: str = "defaults"          # where the fixed costs come from


#: scheduler defaults of each engine (their documented defaults for online serving on an 80 GB GPU)
ENGINES = {
    # vLLM V1 (docs.vllm.ai, "Optimization and Tuning" / EngineArgs): max_num_batched_tokens 8192 for
    # the OpenAI server, gpu_memory_utilization 0.9, block_size 16; max_num_seqs 256 (vLLM's default
    # below 70 GiB and on A100; on larger chips it defaults to 1024, but the H100 rows at concurrency
    # 512 ran about 100 sequences, and 1024 makes their TTFT 90-100% fast: docs/serving.md).
    # The budget is what the rows' launchers give: vllm/engine/arg_utils.py (get_batch_defaults)
    # sets 8192 tokens and 1024 sequences for the OpenAI-server usage context on chips of 70 GiB or
    # more other than A100, the context both `vllm serve` and dynamo's vLLM worker use
    # (ai-dynamo/dynamo, dynamo/vllm/main.py: UsageContext.OPENAI_API_SERVER); InferenceMAX's H100
    # gpt-oss scripts pass max-num-batched-tokens 8192 and --max-num-seqs = the concurrency
    # (SemiAnalysisAI/InferenceX benchmarks/gptoss_fp4_h100*.sh). None of them sets 256 (docs/serving.md).
    "vllm": Engine("vllm", 8192, 256, 0.90, 16),
    # SGLang (docs.sglang.ai, server arguments): chunked_prefill_size 8192 on 80 GB GPUs,
    # mem_fraction_static about 0.88, page_size 1; max_running_requests set by memory (no cap here
    # beyond 1024, the cuda-graph batch ceiling it ships with).
    "sglang": Engine("sglang", 8192, 1024, 0.88, 1, mixed_prefill=False),
    # TensorRT-LLM (trtllm-serve defaults, which dynamo's TensorRT-LLM worker takes from BuildConfig too;
    # enable_chunked_prefill False in tensorrt_llm/llmapi/llm_args.py, so a whole prompt must fit the
    # budget, true of every row here): max_num_tokens 8192, max_batch_size 2048,
    # kv_cache free_gpu_memory_fraction 0.9 of what the weights leave, tokens_per_block 32,
    # capacity scheduler GUARANTEED_NO_EVICT.
    "trtllm": Engine("trtllm", 8192, 2048, 0.90, 32, reserve_full_sequence=True, fraction_of_free=True),
}

#: CSV `backend` names and spellings users type, to engine ids
ALIASES = {"vllm": "vllm", "sglang": "sglang", "trtllm": "trtllm", "tensorrt-llm": "trtllm", "tensorrt_llm": "trtllm",
           "trt-llm": "trtllm"}

FIXED_COSTS = ("step_overhead", "sequence_overhead", "request_overhead", "eager_layer_overhead")


def engine_dir():
    """The folder of the shipped per-chip engine fixed costs (calibrations/engines)."""
    return builtin_dir("calibration") / "engines"


def fixed_cost_file(chip_id):
    """(path, chip id it was fitted on) of the engine fixed costs for `chip_id`; h100-sxm's when the
    chip has none of its own; (None, None) when there is no file at all."""
    for candidate in (chip_id, "h100-sxm"):
        path = engine_dir() / f"{candidate}.yaml"
        if path.is_file():
            return path, candidate
    return None, None


def read_fixed_costs(path):
    """{engine: {step_overhead, sequence_overhead, request_overhead, eager_layer_overhead} [s]} from an
    engine file."""
    data = load_yaml(path)
    engines = data.get("engines") if isinstance(data, dict) else None
    if not isinstance(engines, dict):
        raise RooflineError(f"{path}: expected a mapping 'engines' of engine -> fixed costs")
    out = {}
    for name, costs in engines.items():
        if name not in ENGINES:
            raise RooflineError(f"{path}: unknown engine '{name}'; expected one of {', '.join(ENGINES)}")
        values = {}
        for key in FIXED_COSTS:
            entry = costs.get(key) if isinstance(costs, dict) else None
            if entry is None:
                raise RooflineError(f"{path}: engines.{name}.{key} is missing")
            text = entry["value"] if isinstance(entry, dict) else entry
            values[key] = to_si(text, "time", f"engines.{name}.{key}")
            if values[key] < 0:
                raise RooflineError(f"{path}: engines.{name}.{key} must not be negative")
        out[name] = values
    return out


def load_engine(name, chip_id, max_batched_tokens=None, max_sequences=None, memory_fraction=None):
    """The Engine `name` with its fixed costs for `chip_id` and optional scheduler overrides."""
    key = ALIASES.get(str(name).lower())
    if key is None:
        raise RooflineError(f"unknown engine '{name}'; expected one of {', '.join(ENGINES)}")
    engine = ENGINES[key]
    path, fitted_on = fixed_cost_file(chip_id)
    if path is not None:
        costs = read_fixed_costs(path).get(key)
        if costs is not None:
            how = "fitted" if fitted_on == chip_id else f"transferred from {fitted_on}"
            engine = replace(engine, **costs, source=f"{how} ({Path(path).parent.name}/{Path(path).name})")
    return with_limits(engine, max_batched_tokens, max_sequences, memory_fraction)


def with_limits(engine, max_batched_tokens=None, max_sequences=None, memory_fraction=None):
    """`engine` with scheduler limits replaced (checked: positive, memory fraction in (0, 1])."""
    changes = {}
    if max_batched_tokens is not None:
        if max_batched_tokens != int(max_batched_tokens) or max_batched_tokens < 1:
            raise RooflineError(f"max batched tokens must be a whole number of at least 1, got {max_batched_tokens!r}")
        changes["max_batched_tokens"] = int(max_batched_tokens)
    if max_sequences is not None:
        if max_sequences != int(max_sequences) or max_sequences < 1:
            raise RooflineError(f"max sequences must be a whole number of at least 1, got {max_sequences!r}")
        changes["max_sequences"] = int(max_sequences)
    if memory_fraction is not None:
        if not 0 < memory_fraction <= 1:
            raise RooflineError(f"memory fraction must be in (0, 1], got {memory_fraction!r}")
        changes["memory_fraction"] = float(memory_fraction)
    return replace(engine, **changes)
