"""Serving-benchmark rows (the aiconfigurator silicon format): mapping them to specs and predicting them
(serving.rows reads the CSV, serving.deployments the runs' deployments beside it).

Each row names a served model by its Hugging Face id, a system by its common name (h100_sxm), an
engine, a precision, a layout and a load (ISL, OSL, concurrency), and gives the measured TTFT and
TPOT (ms). Rows map to specs without a hand table: the model through ``models.find_model`` (the
model specs' Hugging Face ids) where the library has it, else by the repository name normalised
to a spec id; the system by its name with '_' read as '-' (a trailing '-sxm' dropped when no spec
has it), else through the chip specs' aliases (load_hardware). Rows that do not map are
skipped with the reason.
"""
import math
import re
import statistics
from dataclasses import dataclass, replace

from .. import hardware as hardware_module
from .. import models as models_module
from ..errors import RooflineError
from ..dtypes import compute_class
from ..models import with_dtypes
from ..parallel import Layout, check_layout, with_expert_slots
from ..specs import spec_paths
from ..step import ceilings
from .engines import ALIASES, load_engine
from .disaggregated import disaggregated
from .model import Pool, aggregated, workload
from .deployments import MTP_ACCEPTANCE, deployment_pools, read_deployments, read_library, row_deployments
from .repeats import configuration
from .rows import client_concurrency, number_in, read_rows
from .simulate import simulate as simulate_steps

#: quantization modes of the CSV to roofline dtypes (fp8 block scales: one scale per 128 x 128
#: block, negligible in bytes; int4 weight-only: group-quantized int4, dequantized before the matmul).
#: The modes aiconfigurator writes (GEMMQuantMode and MoEQuantMode of aiconfigurator_core/sdk/common.py) are
#: all here: fp8_static and fp8_ootb are per-tensor fp8, sq int8 weights and activations, w4afp8 int4 weights
#: with fp8 activations (stored as int4 groups), w4a16_mxfp4 and w4a8_mxfp4_mxfp8 gpt-oss's MXFP4 experts,
#: nvfp4_wo and w4a16_nvfp4 NVFP4 weights dequantized to bf16 on chips without FP4 matmuls.
QUANT_DTYPES = {"fp8": "fp8", "fp8_block": "fp8", "fp8_blockwise": "fp8", "fp8_static": "fp8", "fp8_ootb": "fp8",
                "nvfp4": "nvfp4", "nvfp4_wo": "nvfp4", "w4a16_nvfp4": "nvfp4", "fp4": "nvfp4", "mxfp4": "mxfp4",
                "w4a16_mxfp4": "mxfp4", "w4a8_mxfp4_mxfp8": "mxfp4", "w4a8_mxfp4_mxfp8_trtllm": "mxfp4",
                "int4_wo": "int4-g128", "w4a16": "int4-g128", "int4": "int4-g128", "w4afp8": "int4-g128",
                "int8_wo": "int8", "sq": "int8", "bf16": "bf16", "bfloat16": "bf16", "fp16": "fp16", "float16": "fp16"}


def find_model(hf_id):
    """The model spec id for a Hugging Face id, or None."""
    finder = getattr(models_module, "find_model", None)
    if finder is not None:
        try:
            found = finder(hf_id)
        except RooflineError:
            found = None
        if found is not None:
            return getattr(found, "id", found)
    name = hf_id.split("/")[-1].lower()
    name = re.sub(r"^meta-", "", name)
    name = re.sub(r"-(instruct|chat|base|fp8|fp4|nvfp4|awq|gptq)$", "", name)
    name = re.sub(r"-(instruct|chat|base|fp8|fp4|nvfp4|awq|gptq)$", "", name)
    return name if name in spec_paths("model") else None


def find_chip(system):
    """The chip spec id for a system name (h100_sxm -> h100-sxm), or None: the chip specs' aliases
    (load_hardware) where they know it, else the name with '_' read as '-', or without '-sxm'."""
    known = spec_paths("hardware")
    name = system.lower().replace("_", "-")
    for candidate in (name, re.sub(r"-sxm\d*$", "", name)):
        if candidate in known:
            return candidate
    try:
        return hardware_module.load_hardware(system).id
    except RooflineError:
        return None


#: InferenceMAX's client (InferenceX dumps): lengths drawn uniformly in [0.8 L, L], 10 x concurrency
#: prompts per run (github.com/InferenceMAX/InferenceMAX README, "Benchmark Client Configuration")
INFERENCEMAX = (0.8, 10)


def protocol(row):
    """(range ratio, requests per client) of the benchmark client that measured `row`: InferenceMAX's
    for rows from its database dumps (silicon_data_source 'source_file=YYYY-MM-DD.csv' or 'db-dump');
    else fixed lengths, and the same 10 requests per client assumed (those runs do not publish
    their length)."""
    source = row.get("silicon_data_source") or ""
    if re.search(r"source_file=\d{4}-\d{2}-\d{2}\.csv|db-dump", source):
        return INFERENCEMAX
    return 1.0, INFERENCEMAX[1]


def layout_of(row, prefix="", model=None):
    """Layout of a row (or of its `prefix` pool: 'prefill_', 'decode_'): tp, pp, and ep = tp x
    attention-DP groups when attention is data-parallel, tp when experts are expert-parallel, else 1.

    InferenceMAX's dumps count chips differently: their `tp` is the server's GPU count, and
    data-parallel attention (dp-attn) splits those same GPUs into groups, so a dump row with
    attention_dp_size = dp > 1 runs dp groups of tp / dp chips on tp chips (its batch_size is the
    concurrency per group, its moe_ep_size tp x dp). The MiniMax-M2.5 rows of the 2026-04-06 dump
    (tp 4, attention_dp 4, moe_ep 16, run ids 'tp4_ep4') measure the TPOT of the 2026-03-25 dump's
    TP4/EP4 runs on 4 GPUs within 2% in 13 of 15 configurations: 4 chips, not 16.

    A disaggregated pool of those dumps gives its worker's GPUs as tp (moe_tp x moe_ep = tp); one whose
    tp does not divide `model`'s attention heads (SGLang's DeepSeek-R1 decode workers of 24 or 48 GB200
    GPUs) can only have run data-parallel attention with the experts over all its GPUs, as SGLang's
    wide-EP deployments do (--tp-size N --dp-size N --enable-dp-attention; lmsys.org/blog/2025-06-16-gb200-part-1).
    """
    tp = number_in(row, prefix + "tp_size", 1) or 1
    pp = number_in(row, prefix + "pp_size", 1) or 1
    dp = number_in(row, prefix + "attention_dp_size", 1) or 1
    moe_ep = number_in(row, prefix + "moe_ep_size", 1) or 1
    if dp > 1 and not prefix and protocol(row) == INFERENCEMAX and tp % dp == 0:
        return Layout(tp // dp, pp, tp, 1)
    if prefix and dp == 1 and moe_ep > 1 and model is not None and model.num_heads % tp:
        return Layout(1, pp, tp, 1)
    ep = tp * dp if dp > 1 else (tp if moe_ep > 1 else 1)
    return Layout(tp, pp, ep, 1)


@dataclass(frozen=True)
class Prediction:
    id: str
    system: str
    model: str
    engine: str
    mode: str
    isl: int
    osl: int
    concurrency: int
    layout: str
    ttft_s: float
    tpot_s: float
    measured_ttft_s: float
    measured_tpot_s: float
    deployment: str = ""    # the deployment entry predicted on (FILE.deployments.yaml), if any
    candidates: int = 0     # deployments the row may have run on (> 1: ambiguous)

    @property
    def ttft_error(self):
        return self.ttft_s / self.measured_ttft_s - 1

    @property
    def tpot_error(self):
        return self.tpot_s / self.measured_tpot_s - 1

    def to_dict(self):
        out = dict(self.__dict__)
        out.update(ttft_error=self.ttft_error, tpot_error=self.tpot_error)
        return out


def _model_for(row, cache):
    key = (row["model_path"], row.get("gemm_quant_mode") or "", row.get("moe_quant_mode") or "")
    if key in cache:
        return cache[key]
    model_id = find_model(row["model_path"])
    if model_id is None:
        cache[key] = f"no model spec for '{row['model_path']}'"
        return cache[key]
    model = models_module.load_model(model_id)
    gemm, moe = (QUANT_DTYPES.get(q.lower()) if q else None for q in key[1:])
    for q, mapped in zip(key[1:], (gemm, moe)):
        if q and mapped is None:
            cache[key] = f"unknown precision '{q}'"
            return cache[key]
    if model.id in FP4_BF16_ATTENTION and gemm and compute_class(gemm) == "fp4":
        model = with_dtypes(model, weights="bf16", experts=moe or gemm)
    elif not _native_checkpoint(model, moe or gemm):
        model = with_dtypes(model, weights=gemm, experts=moe or gemm) if gemm or moe else model
    cache[key] = model
    return model


#: models whose FP4 checkpoints keep the attention projections in BF16: NVIDIA's ModelOpt NVFP4 releases of
#: DeepSeek-R1/V3 (nvidia/DeepSeek-R1-0528-FP4, -FP4-v2, DeepSeek-V3-0324-FP4) quantize the MLPs (routed and
#: shared experts, the dense layers' MLP) and leave the MLA projections and the LM head in BF16 (the -v2
#: card: "compared to nvidia/DeepSeek-R1-0528-FP4, this checkpoint additionally quantizes the wo module in
#: attention layers"; huggingface.co/nvidia/DeepSeek-R1-0528-FP4-v2). The non-expert weights are then mostly
#: BF16 by bytes (v1: 11.4e9 attention and 1.9e9 embedding/head parameters against 3.7e9 shared/dense MLP
#: ones; v2 with wo in FP4 still about two thirds BF16), so an fp4 row of these models maps to BF16 weights
#: and FP4 routed experts.
FP4_BF16_ATTENTION = frozenset({"deepseek-v3"})


def _native_checkpoint(model, row_dtype):
    """Whether a row's quantization names the released checkpoint's own format: the model spec stores its
    routed experts apart from its other weights, in a format of the same matmul class as the row's
    (gpt-oss-120b: bf16 attention, MXFP4 experts; the rows call it nvfp4). Then the spec's dtypes stand:
    the engine serves the checkpoint as released and does not requantize the attention weights."""
    experts = model.dtypes.get("experts")
    return bool(row_dtype and experts and experts != model.dtypes.get("weights")
                and compute_class(experts) == compute_class(row_dtype))


def replicate_kv_heads(model, tp):
    """`model` with its KV heads replicated up to `tp` when tensor parallelism is wider than them.

    Engines shard GQA attention over more chips than KV heads by giving each chip a copy of one KV
    head (vLLM and TensorRT-LLM replicate them): per chip the cache and its reads are one head's,
    and the copies add to the total. Written as num_kv_heads = tp (tp must divide the query heads).
    """
    if model.attention.kind == "mla" or tp <= model.num_kv_heads or model.num_heads % tp:
        return model
    return replace(model, num_kv_heads=tp)


def predict_row(row, engines=None, caches=None, mode="calibrated", deployment=None, candidates=0, simulate=False):
    """Prediction for one CSV row, or a str saying why it cannot be predicted.

    `engines`: {engine name: Engine} replacing the shipped fixed costs (the fit passes its trial).
    `deployment`: an entry of FILE.deployments.yaml the disaggregated row ran on (its pools, the
    decode batch limit, MTP), one of `candidates`.
    `simulate`: aggregated rows by the discrete-event simulation (serving.simulate) instead of the
    mean-value model; disaggregated rows are then skipped (the simulation covers aggregated serving).
    """
    caches = caches if caches is not None else {"models": {}, "chips": {}}
    model = _model_for(row, caches["models"])
    if isinstance(model, str):
        return model
    chip_id = caches["chips"].get(row["system"]) or find_chip(row["system"])
    if chip_id is None:
        return f"no chip spec for system '{row['system']}'"
    caches["chips"][row["system"]] = chip_id
    hw = caches.setdefault("hardware", {}).get(chip_id) or hardware_module.load_hardware(chip_id)
    caches["hardware"][chip_id] = hw
    engine_name = ALIASES.get((row.get("backend") or "").lower())
    if engine_name is None:
        return f"unknown engine '{row.get('backend')}'"
    engine = (engines or {}).get(engine_name) or load_engine(engine_name, chip_id)
    try:
        concurrency = client_concurrency(row)
    except RooflineError as exc:
        return str(exc)
    try:
        isl, osl = number_in(row, "isl"), number_in(row, "osl")
        ttft, tpot = float(row["silicon_ttft_ms"]) / 1e3, float(row["silicon_tpot_ms"]) / 1e3
        if isl is None or osl is None:
            raise ValueError
    except (TypeError, ValueError, RooflineError):
        return "ISL, OSL, TTFT or TPOT is not a number"
    if concurrency is None and (row.get("mode") or "agg") == "disagg":
        return ("disaggregated row without the client concurrency (silicon_concurrency): decode_batch_size is "
                "the decode workers' configured batch, not the load")
    if not concurrency or not math.isfinite(ttft) or not math.isfinite(tpot):
        return "no concurrency in the row"
    ceiling = ceilings(hw, mode)
    try:
        ratio, per_client = protocol(row)
        load = workload(model, (math.ceil(ratio * isl), isl), (max(2, math.ceil(ratio * osl)), osl),
                        concurrency=concurrency, requests_per_client=per_client)
        widest = max(number_in(row, k, 1) or 1 for k in ("tp_size", "prefill_tp_size", "decode_tp_size"))
        model = replicate_kv_heads(model, widest)
        if (row.get("mode") or "agg") == "disagg" and simulate:
            return "disaggregated row: the simulation covers aggregated serving"
        if (row.get("mode") or "agg") == "disagg" and deployment is not None:
            widths = [(number_in(row, side + "_tp_size", widest) or widest) * (number_in(row, side + "_attention_dp_size", 1) or 1)
                      for side in ("prefill", "decode")]
            prefill, decode = deployment_pools(model, deployment, widths)
            # the recipe's batch limit holds per scheduler: per data-parallel attention group (model.running_limit)
            decode_engine = replace(engine, max_sequences=deployment.get("decode_max_batch") or engine.max_sequences,
                                    moe_exchange=deployment.get("decode_moe_exchange") or engine.moe_exchange)
            prefill_engine = replace(engine, max_batched_tokens=deployment.get("prefill_max_tokens")
                                     or engine.max_batched_tokens,
                                     moe_exchange=deployment.get("prefill_moe_exchange") or engine.moe_exchange)
            k = deployment.get("draft_tokens") or 0
            result = disaggregated(model, hw, prefill, decode, ceiling, decode_engine, load,
                                   prefill_engine=prefill_engine, speculative=(k, MTP_ACCEPTANCE) if k else None)
        elif (row.get("mode") or "agg") == "disagg":
            prefill, decode = (Pool(check_layout(model, with_expert_slots(model, layout_of(row, side, model))),
                                    number_in(row, side + "num_workers", 1) or 1) for side in ("prefill_", "decode_"))
            result = disaggregated(model, hw, prefill, decode, ceiling, engine, load)
        else:
            pool = Pool(check_layout(model, with_expert_slots(model, layout_of(row))), 1)
            result = (simulate_steps if simulate else aggregated)(model, hw, pool, ceiling, engine, load)
    except RooflineError as exc:
        return str(exc)
    return Prediction(row["id"], row["system"], model.id, engine_name, row.get("mode") or "agg", isl, osl,
                      concurrency, result.layout, result.ttft_s, result.tpot_s, ttft, tpot,
                      deployment["recipe"] if deployment else "", candidates)


def validate_file(path, mode="calibrated", engines=None, rows=None, simulate=False):
    """(predictions, skipped [(id, reason)]) for every row of a serving CSV (`simulate`: predict_row).

    A disaggregated row with one deployment in FILE.deployments.yaml (else in the shipped library of
    deployments, serving.deployments.read_library) is predicted on it. A row whose
    CSV configuration several deployments share (runs with and without MTP, or with tensor- and
    data-parallel attention, under the same columns) cannot say which it ran on: it gets the
    geometric mean of the deployments' predictions, labelled so. (Choosing by the measured value
    would let the measurement pick its prediction.)
    """
    rows = read_rows(path) if rows is None else rows
    sidecar, library = (read_deployments(path) if path else []), read_library()
    caches = {"models": {}, "chips": {}}
    predictions, skipped, ambiguous = [], [], {}
    for index, row in enumerate(rows):
        try:
            found = (row_deployments(row, sidecar, library, find_model(row.get("model_path") or ""))
                     if (row.get("mode") or "agg") == "disagg" else [])
            if len(found) > 1 and not simulate:
                ambiguous.setdefault(configuration(row), []).append((index, row, found))
                continue
            out = predict_row(row, engines, caches, mode, found[0] if found else None, len(found), simulate)
        except RooflineError as exc:
            out = str(exc)
        if isinstance(out, str):
            skipped.append((row.get("id", ""), out))
        else:
            predictions.append((index, out))
    for members in ambiguous.values():
        _, first, found = members[0]
        options = [predict_row(first, engines, caches, mode, d, len(found)) for d in found]
        if any(isinstance(o, str) for o in options):
            skipped += [(row.get("id", ""), next(o for o in options if isinstance(o, str))) for _, row, _ in members]
            continue
        ttft_s = math.prod(o.ttft_s for o in options) ** (1 / len(options))
        tpot_s = math.prod(o.tpot_s for o in options) ** (1 / len(options))
        name = "geometric mean of " + ", ".join(o.deployment for o in options)
        for index, row, _ in members:
            predictions.append((index, replace(options[0], id=row["id"], ttft_s=ttft_s, tpot_s=tpot_s,
                                               measured_ttft_s=float(row["silicon_ttft_ms"]) / 1e3,
                                               measured_tpot_s=float(row["silicon_tpot_ms"]) / 1e3,
                                               deployment=name)))
    return [p for _, p in sorted(predictions, key=lambda ip: ip[0])], skipped


def summary(predictions, key=lambda p: p.mode):
    """{group: {rows, ttft_median, tpot_median, ttft_signed, tpot_signed, ttft_max, tpot_max}} of the errors
    by `key` (medians of the absolute and of the signed errors; a key of None leaves a row out)."""
    groups = {}
    for p in predictions:
        name = key(p)
        if name is not None:
            groups.setdefault(name, []).append(p)
    out = {}
    for name, items in sorted(groups.items(), key=lambda kv: _group_order(kv[0])):
        ttft = [p.ttft_error for p in items]
        tpot = [p.tpot_error for p in items]
        out[str(name)] = {"rows": len(items), "ttft_median": statistics.median(map(abs, ttft)),
                          "tpot_median": statistics.median(map(abs, tpot)), "ttft_signed": statistics.median(ttft),
                          "tpot_signed": statistics.median(tpot), "ttft_max": max(map(abs, ttft)),
                          "tpot_max": max(map(abs, tpot))}
    return out


def _group_order(name):
    """Groups in reading order: numbers as numbers ('128/512' before '1024/128', '5-16' before '17-64')."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"[/\- ]+", str(name)) if part]


#: client concurrency bands of the error tables: (low, high, label)
CONCURRENCY_BANDS = ((1, 4, "1-4"), (5, 16, "5-16"), (17, 64, "17-64"), (65, 256, "65-256"), (257, math.inf, "257+"))
#: the engine costs are fitted on aggregated rows with at most this concurrency (roofline.serving.fit)
FITTED_CONCURRENCY = 64


def concurrency_band(concurrency):
    return next(label for low, high, label in CONCURRENCY_BANDS if low <= concurrency <= high)


#: the error tables `roofline validate` prints for a serving CSV: {title: key of a Prediction}; ISL/OSL and
#: concurrency of the aggregated rows, engines split into the rows the engine costs were fitted on and the rest
GROUPS = {
    "by mode": lambda p: p.mode,
    "by engine": lambda p: f"{p.engine} {p.mode} " + (
        "fitted" if p.mode == "agg" and p.concurrency <= FITTED_CONCURRENCY else "held out"),
    "by model": lambda p: f"{p.model} {p.mode}",
    "by system, engine and model": lambda p: f"{p.system} {p.engine} {p.mode} {p.model}",
    "by ISL/OSL": lambda p: f"{p.isl}/{p.osl}" if p.mode == "agg" else None,
    "by concurrency": lambda p: concurrency_band(p.concurrency) if p.mode == "agg" else None,
    "by concurrency (disaggregated)": lambda p: concurrency_band(p.concurrency) if p.mode == "disagg" else None,
}
