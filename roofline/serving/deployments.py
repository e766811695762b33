"""The deployments a serving CSV drops: for each disaggregated run, its workers, attention parallelism,
decode batch limit and MTP, sourced from the benchmark's own configurations (docs/serving.md, "Deployments
the CSV drops"), checked field by field. Two places hold them: FILE.deployments.yaml beside the CSV (read
first), and the shipped library hardware_specs/deployments/*.yaml, whose entries name the system and
precision they ran on and so apply to a CSV of any name.
"""
from pathlib import Path

from ..errors import SpecError
from ..parallel import Layout, check_layout, with_expert_slots
from ..specs import builtin_dir, load_yaml
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
                     "prefill_attention": ("tp", "dp"), "decode_attention": ("tp", "dp"), "decode_max_batch": (int, None),
                     "recipe": str, "system": (str, None), "precision": (str, None), "model": (str, None),
                     "config": (str, None),
                     "prefill_max_tokens": (int, None), "prefill_moe_exchange": ("allgather", "alltoall", None),
                     "decode_moe_exchange": ("allgather", "alltoall", None), "prefill_experts": ("tp", "ep", None),
                     "decode_experts": ("tp", "ep", None)}
#: fields a library entry must give besides the required ones: it applies to any CSV, so it names the chip,
#: the precision, the model (a model spec id) and the benchmark configuration it was read from
LIBRARY_FIELDS = ("system", "precision", "model", "config")


def library_dir():
    """The folder of the shipped deployments library (hardware_specs/deployments)."""
    return builtin_dir("hardware") / "deployments"


def read_deployments(path):
    """The entries of FILE.deployments.yaml beside the serving CSV `path` (none when it is absent);
    SpecError naming the entry and the field that is missing or wrong."""
    sidecar = Path(path).with_suffix(".deployments.yaml")
    return _checked_entries(sidecar) if sidecar.is_file() else []


def read_library(directory=None):
    """The entries of every *.yaml of the deployments library (`directory`, default library_dir()), each
    naming its system, precision and configuration; SpecError naming the file, entry and field."""
    directory = Path(directory) if directory is not None else library_dir()
    paths = sorted(directory.glob("*.yaml")) if directory.is_dir() else []
    return [entry for path in paths for entry in _checked_entries(path, LIBRARY_FIELDS)]


def _checked_entries(path, required=()):
    """The `deployments` list of the YAML file `path`, every field checked against DEPLOYMENT_FIELDS
    (`required`: optional fields this file must give)."""
    data = load_yaml(path)
    entries = (data.get("deployments") if isinstance(data, dict) else None) or []
    if not isinstance(entries, list):
        raise SpecError(path, "'deployments' must be a list of entries")
    for number, entry in enumerate(entries, 1):
        for name, kind in DEPLOYMENT_FIELDS.items():
            value = entry.get(name) if isinstance(entry, dict) else None
            if isinstance(kind, tuple) and kind[-1] is None:     # optional: (type, None) or (choices..., None)
                optional, kind = name not in required, (kind[0] if isinstance(kind[0], type) else kind[:-1])
            else:
                optional = False
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
                raise SpecError(f"{path}, deployment {number}, {name}",
                                f"expected {wanted}, got {value!r}")
    return entries


def deployments_for(row, deployments, model_id=None):
    """The deployments of `deployments` a disaggregated row may have run on: same engine, ISL, OSL and
    concurrency, and the worker counts and attention parallelism the row states, where it does; an entry
    naming a `system` or `precision` (a file of several chips) only for rows of that system and precision,
    one naming a `model` only for rows whose model_path maps to that model spec (`model_id`)."""
    engine = ALIASES.get((row.get("backend") or "").lower())
    concurrency = client_concurrency(row)
    stated = {"prefill_workers": number_in(row, "prefill_num_workers"), "decode_workers": number_in(row, "decode_num_workers")}
    if stated["decode_workers"] is not None:
        stated["decode_attention"] = "dp" if (number_in(row, "decode_attention_dp_size", 1) or 1) > 1 else "tp"
    return [d for d in deployments
            if (d["engine"], d["isl"], d["osl"], d["concurrency"]) == (engine, number_in(row, "isl"), number_in(row, "osl"),
                                                                       concurrency)
            and all(v is None or d.get(k) == v for k, v in stated.items())
            and all(d.get(k) is None or d[k] == (row.get(k) or "") for k in ("system", "precision"))
            and d.get("model") in (None, model_id)]


def row_deployments(row, sidecar, library, model_id=None):
    """The deployments a disaggregated row may have run on: those of the CSV's own FILE.deployments.yaml
    (`sidecar`) where any match, else those of the shipped library (deployments_for; `model_id`: the
    model spec the row's model_path maps to)."""
    return deployments_for(row, sidecar, model_id) or deployments_for(row, library, model_id)


def deployment_pools(model, deployment, widths):
    """(prefill Pool, decode Pool) of a deployment entry over `widths` = (prefill, decode) GPUs per worker
    (a GB200 run's 4-GPU prefill and 32-GPU decode workers differ): attention
    `tp` (TP over the worker; experts as `prefill_experts`/`decode_experts` say, else EP for TensorRT-LLM
    and TP for SGLang) or `dp` (one data-parallel attention group per GPU, experts EP)."""
    def layout(side, gpus):
        if deployment[side + "_attention"] == "dp":
            return with_expert_slots(model, Layout(1, 1, gpus, 1))
        experts = deployment.get(side + "_experts") or ("ep" if deployment["engine"] == "trtllm" else "tp")
        return Layout(gpus, 1, gpus if experts == "ep" else 1, 1)
    return tuple(Pool(check_layout(model, layout(side, gpus)), deployment[side + "_workers"])
                 for side, gpus in zip(("prefill", "decode"), widths))
