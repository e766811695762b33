"""Options of speculative decoding: parsed here, computed in roofline.speculative."""
import click

from ..errors import RooflineError
from .output import DTYPE


def speculative_options(func):
    """--speculative DRAFT|mtp, --draft-tokens k, --acceptance a, --draft-weights-dtype."""
    options = [
        click.option("--speculative", "draft", default=None, metavar="DRAFT_ID|mtp",
                     help="Speculative decoding with this draft model, or 'mtp' for the model's own "
                          "multi-token-prediction layers."),
        click.option("--draft-tokens", type=int, default=None, metavar="K",
                     help="Tokens drafted per round (default for mtp: the model's MTP depth)."),
        click.option("--acceptance", type=float, default=None, metavar="A",
                     help="Probability that a drafted token is accepted, 0..1."),
        click.option("--draft-weights-dtype", type=DTYPE, default=None,
                     help="Storage dtype of the draft model's weights (default: --weights-dtype, else its own)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def speculative_request(draft, draft_tokens, acceptance, draft_weights_dtype):
    """The speculative options as keyword arguments for roofline.speculative.decode, or None when
    --speculative is absent; RooflineError for options that need it or that it needs."""
    if draft is None:
        given = [name for name, value in (("--draft-tokens", draft_tokens), ("--acceptance", acceptance),
                                          ("--draft-weights-dtype", draft_weights_dtype)) if value is not None]
        if given:
            raise RooflineError(f"{', '.join(given)} needs --speculative DRAFT_ID|mtp")
        return None
    if acceptance is None:
        raise RooflineError("--speculative needs --acceptance A, the probability (0..1) that a drafted token is "
                            "accepted")
    if draft_tokens is None and draft != "mtp":
        raise RooflineError("--speculative with a draft model needs --draft-tokens K, the tokens drafted per round")
    return {"draft": draft, "draft_tokens": draft_tokens, "acceptance": acceptance,
            "draft_weights_dtype": draft_weights_dtype}


#: speculative fields added to the decode output, and the names they are shown under
SPECULATIVE_FIELDS = (("draft", "draft"), ("draft_tokens", "draft_tokens"), ("acceptance", "acceptance"),
                      ("tokens_per_step", "tokens_per_step"), ("draft_step_time_s", "draft_step_time_s"),
                      ("verify_time_s", "verify_time_s"), ("round_time_s", "round_time_s"),
                      ("speedup", "speedup"),
                      ("tokens_per_s_per_user", "speculative_tokens_per_s_per_user"),
                      ("tokens_per_s", "speculative_tokens_per_s"),
                      ("usd_per_mtok", "speculative_usd_per_mtok"),
                      ("joules_per_token", "speculative_joules_per_token"),
                      ("memory_needed_bytes", "speculative_memory_needed_bytes"),
                      ("fits", "speculative_fits"))


def speculative_fields(result):
    """{shown name: value} of a SpeculativeResult, for the decode output."""
    return {shown: getattr(result, name) for name, shown in SPECULATIVE_FIELDS}
