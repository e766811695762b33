"""`roofline model import`: a Hugging Face config.json becomes a model spec file."""
import click

from ..specs import builtin_dir
from . import cli
from .output import emit_record, format_option
from .specs_cmd import count_text


@cli.group("model")
def model_group():
    """Add models: turn a local Hugging Face config.json into a model spec file."""


@model_group.command("import")
@click.argument("config", metavar="CONFIG_JSON")
@click.option("--id", "model_id", default=None,
              help="Model id (and file stem); default: the file name, or the folder of a config.json.")
@click.option("--output", "-o", default=None,
              help="Where to write: a .yaml file named <id>.yaml or a folder. Default: the user spec folder "
                   "($XDG_DATA_HOME/roofline/model_specs), where --model <id> finds it.")
@click.option("--name", default=None, help="Display name; default: the config's _name_or_path or the id.")
@click.option("--force", is_flag=True, help="Overwrite an existing spec file.")
@format_option
def import_model(config, model_id, output, name, force, fmt):
    """Write a model spec from a local config.json (Llama, Mistral, Mixtral, Qwen2/3, Qwen3-MoE,
    DeepSeek-V3/V3.2, GLM-4 MoE, gpt-oss, Gemma 3, Llama 4). No network.

    The config states no parameter count, so params.total (and active, for MoE) are computed from
    the architecture and marked as such in the file.
    """
    from ..model_import import import_config  # tempfile/shutil only for this command

    path, model = import_config(config, model_id=model_id, output=output, force=force, name=name)
    shadows = (builtin_dir("model") / f"{model.id}.yaml").is_file()
    notes = [f"this file overrides the shipped spec '{model.id}'"] if shadows else []
    count = count_text if fmt == "table" else (lambda n: n)
    emit_record([("id", model.id), ("written", str(path)), ("architecture", model.architecture),
                 ("layers", model.num_layers), ("params_total_computed", count(model.params_total)),
                 ("params_active_computed", count(model.params_active))], fmt, notes=notes)
