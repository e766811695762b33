"""The deployments a serving CSV drops, in FILE.deployments.yaml beside it: for each disaggregated run,
its workers, attention parallelism, decode batch limit and MTP, sourced from the benchmark's own
configurations (docs/serving.md, "Deployments the CSV drops"), checked field by field.
"""
from pathlib import Path

from ..errors import SpecError
from ..parallel import Layout, check_layout, with_expert_slots
from ..specs import load_yaml
from .engines import ALIASES
from .model import Pool
from .rows import client_concurrency, number_in


#: acceptance of an MTP-drafted token in the benchmarks' runs, an effective rate (speculative.py),
#: fitted on the 10 TensorRT-LLM MTP rows with concurrency <= 64 (median TPOT error +1%; 0.85, the
#: rate DeepSeek-V3's report gives for natural text, arXiv:2412.19437 Sec. 5.4.3, reads them 40% fast).
#: The benchmarks draw random prompt tokens, which a draft predicts worst: E = 1.875 tokens per round
#: at k = 3, inside the 1.36-2.04 accepted per step another MTP model measured on the same random
#: dataset (github.com/MiaAI-Lab/Qwen3.8-Flash-Next-Dual-DGX-Sparks issue 22). Held out: the
#: TensorRT-LLM rows above 64 and all SGLang rows (EAGLE over the same MTP module, k = 2).
MTP_ACCEPTANCE = 0.5


#: fields of an entry of FILE.deployments.yaml and what each must be
DEPLOYMENT_FIELDS = {"engine": tuple(sorted(set(ALIASES.values()))), "isl": int, "osl": int, "concurrency": int,
                     "draft_tokens": int, "prefill_workers": int, "decode_workers": int,
                     "prefill_attention": ("tp", "dp"), "decode_attention": ("tp", "dp"), "decode_max_batch": int,
                     "recipe": str, "system": (str, None), "precision": (str, None)}


def read_deployments(path):
    """The entries of FILE.deployments.yaml beside the serving CSV `path` (none when it is absent);
    SpecError naming the entry and the field that is missing or wrong."""
    sidecar = Path(path).with_suffix(".deployments.yaml")
    if not sidecar.is_file():
        return []
    entries = load_yaml(sidecar).get("deployments") or []
    if not isinstance(entries, list):
        raise SpecError(sidecar, "'deployments' must be a list of entries")
    for number, entry in enumerate(entries, 1):
        for name, kind in DEPLOYMENT_FIELDS.items():
            value = entry.get(name) if isinstance(entry, dict) else None
            optional = isinstance(kind, tuple) and kind[-1] is None
            kind = kind[0] if optional else kind
            if optional and value is None:
                continue
            if isinstance(kind, tuple):
                good = value in kind
            else:
                least = 0 if name == "draft_tokens" else 1
                good = isinstance(value, kind) and not isinstance(value, bool) and (kind is not int or value >= least)
            if not good:
                wanted = (" or ".join(kind) if isinstance(kind, tuple) else
                          "a whole number" + (" of at least 1" if name != "draft_tokens" else "") if kind is int else "text")
                raise SpecError(f"{sidecar}, deployment {number}, {name}",
                                f"expected {wanted}, got {value!r}")
    return entries


def deployments_for(row, deployments):
    """The deployments of `deployments` a disaggregated row may have run on: same engine, ISL, OSL and
    concurrency, and the worker counts and attention parallelism the row states, where it does; an entry
    naming a `system` or `precision` (a file of several chips) only for rows of that system and precision."""
    engine = ALIASES.get((row.get("backend") or "").lower())
    concurrency = client_concurrency(row)
    stated = {"prefill_workers": number_in(row, "prefill_num_workers"), "decode_workers": number_in(row, "decode_num_workers")}
    if stated["decode_workers"] is not None:
        stated["decode_attention"] = "dp" if (number_in(row, "decode_attention_dp_size", 1) or 1) > 1 else "tp"
    return [d for d in deployments
            if (d["engine"], d["isl"], d["osl"], d["concurrency"]) == (engine, number_in(row, "isl"), number_in(row, "osl"),
                                                                       concurrency)
            and all(v is None or d.get(k) == v for k, v in stated.items())
            and all(d.get(k) is None or d[k] == (row.get(k) or "") for k in ("system", "precision"))]


def deployment_pools(model, deployment, widths):
    """(prefill Pool, decode Pool) of a deployment entry over `widths` = (prefill, decode) GPUs per worker
    (a GB200 run's 4-GPU prefill and 32-GPU decode workers differ): attention
    `tp` (TP over the worker; experts EP for TensorRT-LLM, TP for SGLang) or `dp` (one data-parallel
    attention group per GPU, experts EP)."""
    def layout(attention, engine, gpus):
        if attention == "dp":
            return with_expert_slots(model, Layout(1, 1, gpus, 1))
        return Layout(gpus, 1, gpus if engine == "trtllm" else 1, 1)
    return tuple(Pool(check_layout(model, layout(deployment[side + "_attention"], deployment["engine"], gpus)),
                      deployment[side + "_workers"]) for side, gpus in zip(("prefill", "decode"), widths))
