"""`roofline model import`: a config.json becomes a model spec file.

Reads the config (roofline.hf_import maps its keys), adds the parameter counts computed by
roofline.params (a config states none), renders the YAML with the config key of every field as a
comment, and writes it atomically after checking that it loads: on any error nothing is written.
"""
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import yaml

from .errors import RooflineError, excerpt
from .hf_import import COMPUTED, read_config, spec_from_config
from .specs import builtin_dir, user_data_root


#: the longest model id (it becomes a file name; file systems allow 255 bytes)
MAX_ID = 100


def default_id(config_path):
    """A model id from the config's path: its stem, or for config.json the folder (HF cache aware)."""
    path = Path(config_path).resolve()
    stem = path.stem
    if stem == "config":
        folder = path.parent
        if re.fullmatch(r"[0-9a-f]{40}", folder.name) and folder.parent.name == "snapshots":
            stem = folder.parent.parent.name.split("--")[-1]
        else:
            stem = folder.name
    return re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-.")


def render_yaml(spec, comments, header):
    """The spec as YAML text, each line with the config key it came from as a comment."""
    lines = [f"# {line}" if line else "#" for line in header]

    def scalar(value):
        if isinstance(value, str):
            return json.dumps(value)
        return yaml.safe_dump(value, default_flow_style=True, width=10 ** 6, sort_keys=False).strip() \
            .removesuffix("...").strip()

    def emit(mapping, indent, prefix):
        for key, value in mapping.items():
            field = f"{prefix}{key}"
            note = f"  # {comments[field]}" if field in comments else ""
            if isinstance(value, dict) and key in ("attention", "moe", "sparse", "params", "sources"):
                lines.append(f"{' ' * indent}{key}:{note}")
                emit(value, indent + 2, f"{field}.")
            else:
                lines.append(f"{' ' * indent}{key}: {scalar(value)}{note}")
    emit(spec, 0, "")
    return "\n".join(lines) + "\n"


def output_path(model_id, output=None):
    """Where the spec goes: `output` (a .yaml file or a folder), else the user spec folder."""
    if output is None:
        return user_data_root() / "model_specs" / f"{model_id}.yaml"
    output = Path(output)
    try:
        is_folder = output.is_dir()
    except OSError as exc:
        raise RooflineError(f"--output {excerpt(str(output))}: {exc.strerror}") from None
    if is_folder:
        return output / f"{model_id}.yaml"
    if output.suffix not in (".yaml", ".yml"):
        raise RooflineError(f"--output {excerpt(str(output))}: expected a .yaml file or an existing folder")
    if output.stem != model_id:
        raise RooflineError(f"--output {output}: the file name must be the model id, {model_id}.yaml "
                            "(or pass --id to match it)")
    return output


def _exists(path):
    """Path.exists, with a path the file system refuses (a name too long) as a one-line error."""
    try:
        return Path(path).exists()
    except OSError as exc:
        raise RooflineError(f"{excerpt(str(path))}: cannot write there ({exc.strerror}); "
                            "check --output and XDG_DATA_HOME") from None


def write_spec(text, target, force=False):
    """Write `text` to `target` atomically (temp file + rename) after checking that it loads.

    RooflineError if `target` exists and not `force`; on any error nothing is written.
    """
    from .models import load_model

    target = Path(target)
    if _exists(target) and not force:
        raise RooflineError(f"{target}: already exists; pass --force to overwrite it")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".roofline-import-", dir=target.parent))
    except OSError as exc:
        raise RooflineError(f"{target}: cannot write there ({exc.strerror or exc.__class__.__name__}); "
                            "expected a writable folder (check --output and XDG_DATA_HOME)") from None
    try:
        draft = scratch / target.name
        draft.write_text(text, encoding="utf-8")
        model = load_model(str(draft))
        os.replace(draft, target)
    except OSError as exc:
        raise RooflineError(f"{target}: cannot write ({exc.strerror or exc.__class__.__name__})") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return model


def import_config(config_path, model_id=None, output=None, force=False, name=None):
    """Read a config.json, write the model spec file; returns (path written, Model)."""
    from .models import model_from_data
    from .params import count_params

    if output is not None and not str(output).strip():
        raise RooflineError("--output '': expected a .yaml file or an existing folder")
    config_path = Path(config_path)
    data = read_config(config_path)
    if model_id is None:
        model_id = Path(output).stem if output and Path(output).suffix in (".yaml", ".yml") else default_id(config_path)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,%d}" % (MAX_ID - 1), model_id or ""):
        raise RooflineError(f"--id {excerpt(model_id)}: expected up to {MAX_ID} letters, digits, '.', '_' or '-' "
                            "(it becomes the file name)")
    target = output_path(model_id, output)
    if _exists(target) and not force:
        raise RooflineError(f"{target}: already exists; pass --force to overwrite it")
    if output is None and (builtin_dir("model") / f"{model_id}.yaml").is_file() and not force:
        raise RooflineError(f"--id {model_id}: a shipped model has this id and the import would override it; "
                            "pass another --id, or --force to override it")
    spec, comments = spec_from_config(data, config_path, model_id, name)
    sources = {"hf-config": str(config_path.resolve()),
               "computed": "roofline.params.count_params (roofline model import), from the fields of this file"}
    if any(isinstance(v, dict) and v.get("source") == "hf-defaults" for v in _numbers(spec)):
        sources["hf-defaults"] = "defaults of the transformers configuration class of this architecture, " \
                                 "for keys the config omits"
    draft = {**spec, "params": {"total": {"value": 1, "source": "computed"}}, "sources": sources}
    counts = count_params(model_from_data(draft, Path(f"{model_id}.yaml")))
    included = "embeddings and LM head included" + (", MTP layers not" if spec.get("mtp_layers") else "")
    params = {"total": {"value": int(counts.total), "source": "computed", "derived": COMPUTED, "note": included}}
    if spec.get("moe"):
        params["active"] = {"value": int(counts.active), "source": "computed", "derived": COMPUTED,
                            "note": "per token: all but the routed experts a token does not use"}
    header = [f"Written by `roofline model import` from {config_path.resolve()}",
              "(a Hugging Face config.json). The config states no parameter count: params are computed from the",
              "architecture below, not an official figure. Comments name the config key of each field."]
    text = render_yaml({**spec, "params": params, "sources": sources}, comments, header)
    return target, write_spec(text, target, force)


def _numbers(mapping):
    for value in mapping.values():
        if isinstance(value, dict):
            yield value
            yield from _numbers(value)
