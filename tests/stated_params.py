"""The rule by which a parameter count computed from the architecture is compared with a stated one.

One relative tolerance, TOLERANCE, plus an explicit list (STATED_INCLUDES) of what each stated
figure counts beyond what roofline.params.count_params().total counts (the decoder with its
embedding and LM head): MTP layers, the copies of the embedding and head stored with them, a
vision encoder; and for active counts, which of the embedding and LM head the vendor leaves out.

Why 3 %: the stated figures are rounded to 2-4 significant digits. A two-digit figure carries up
to half a unit of rounding: 37B +-1.4 %, 32B +-1.6 %, 22B +-2.3 %, 17B +-2.9 % (12B: 4.2 %).
Vendors also truncate (GLM-4.5-Air: 106.85B computed, stated 106B, +0.8 %) or state a round
figure (Kimi K2: 1.026T computed, stated "1T", +2.6 %; the tech report gives 1.04T), and the spec
format leaves out tensors of about 1 % (the ~0.9B vision encoder of Llama 4, published with no
exact count). 3 % is the rounding of a two-digit figure of 17B and up, the size of every
two-digit figure compared here except GLM-4.5-Air's "12B" active (computed 12.18B, +1.5 %).
Where the spec format cannot express a layer (Qwen3.5's Gated DeltaNet), the parameters it leaves
out are counted from the config and added before the comparison ("unmodelled"), so the check still
tests every field the spec does express.
A wrong architecture field moves a count further: 10 % off the FFN width moves every model's
total by 6-10 % (tests assert it), so the test fails on such a mistake.
"""
from roofline.params import count_params

TOLERANCE = 0.03

#: model id -> what its stated figures count. "total": parts added to ParamCounts.total:
#: "mtp" (ParamCounts.mtp), "mtp_copies" (the embedding and LM head copies a checkpoint stores
#: with each MTP layer), ("vision", n, source) a published vision-encoder count, ("unmodelled", n,
#: how) parameters of layers the spec format cannot express, counted from the config.
#: "active_excludes": parts the vendor leaves out of the active count ("embedding", "lm_head");
#: "active_unmodelled": (n, how) unmodelled parameters that every token uses.
STATED_INCLUDES = {
    # DeepSeek README: 671B main model without the MTP module; README_WEIGHTS: 36.6B activated
    # "including 0.9B for the output Head", i.e. without the input embedding.
    "deepseek-v3": {"total": (), "active_excludes": ("embedding",)},
    # The HF safetensors count (685B) stores the MTP layer with its own embedding and head copies
    # (DeepSeek-V3 README: 685B = 671B main + 14B MTP, 11.5B of it unique).
    "deepseek-v3.2": {"total": ("mtp", "mtp_copies"), "active_excludes": ("embedding",)},
    # Gemma 3 report Table 1: 417M vision encoder + 1,416M embedding + 25,600M non-embedding.
    "gemma-3-27b": {"total": (("vision", 417e6, "Gemma 3 report, arXiv 2503.19786, Table 1"),),
                    "active_excludes": ()},
    # GLM README: 355B / 32B and 106B / 12B; what they include is not stated. The totals are closest
    # to the main model without the MTP layer; the active figures match the count without the
    # embedding and the output layer (32.08B, 12.18B).
    "glm-4.5": {"total": (), "active_excludes": ("embedding", "lm_head")},
    "glm-4.6": {"total": (), "active_excludes": ("embedding", "lm_head")},
    "glm-4.7": {"total": (), "active_excludes": ("embedding", "lm_head")},
    "glm-4.5-air": {"total": (), "active_excludes": ("embedding", "lm_head")},
    # gpt-oss model card Table 1: the unembedding counts as active, the embedding does not.
    "gpt-oss-20b": {"total": (), "active_excludes": ("embedding",)},
    "gpt-oss-120b": {"total": (), "active_excludes": ("embedding",)},
    # DeepSeek-V3 architecture and, assumed, its convention (the Kimi README does not say).
    "kimi-k2": {"total": (), "active_excludes": ("embedding",)},
    # Llama 4: the stated totals include a ~0.9B vision encoder the spec does not model (no exact
    # published count); compared as the text decoder, the difference is within the tolerance.
    "llama-4-scout": {"total": (), "active_excludes": ()},
    "llama-4-maverick": {"total": (), "active_excludes": ()},
    # GLM-5 report: 744B / 40B, the GLM-4.5 convention: the active count without the embedding and
    # the output layer (39.89B computed, 41.79B with both); the total is the main model (744.11B).
    "glm-5": {"total": (), "active_excludes": ("embedding", "lm_head")},
    # MiniMax states "230 billion" / "10 billion" without saying what they include; the active count
    # without the embedding and the head (9.80B) is the closest (10.42B without the embedding: +4%).
    "minimax-m2.5": {"total": (), "active_excludes": ("embedding", "lm_head")},
    # NVIDIA's 32.86B active is the count with embedding and head (32.87B computed); "1T" is round
    # (1,026.5B computed, +2.65%, as Kimi K2).
    "kimi-k2.5": {"total": (), "active_excludes": ()},
    # Qwen3.5's 45 Gated DeltaNet layers and its attention output gate are modelled with the shapes of
    # its full-attention layers (the spec has no linear-attention layer type). What that leaves out,
    # from the config: a DeltaNet layer holds in_proj_qkvz 4096 x 20480, in_proj_ba 4096 x 128, a
    # conv1d of 12288 x 4, out_proj 8192 x 4096 and 256 small vectors, 118,014,208 in all, against
    # 71,303,680 counted for it; the output gate doubles q_proj (4096 x 8192) in the 15 full layers.
    "qwen3.5-397b-a17b": {
        "total": (("unmodelled", 45 * (118_014_208 - 71_303_680) + 15 * 4096 * 8192, "DeltaNet and output gate"),),
        "active_excludes": (),
        "active_unmodelled": (45 * (118_014_208 - 71_303_680) + 15 * 4096 * 8192, "DeltaNet and output gate")},
}
#: every other model: the stated total and active count everything count_params counts
DEFAULT_INCLUDES = {"total": (), "active_excludes": ()}


def expected_total(model, includes=None):
    """What the stated total should equal: ParamCounts.total plus the parts the figure includes."""
    includes = STATED_INCLUDES.get(model.id, DEFAULT_INCLUDES) if includes is None else includes
    counts = count_params(model)
    total = counts.total
    for part in includes["total"]:
        if part == "mtp":
            total += counts.mtp
        elif part == "mtp_copies":
            total += model.mtp_layers * (counts.embedding + (counts.lm_head or counts.embedding))
        else:
            total += part[1]
    return total


def expected_active(model, includes=None):
    """What the stated active count should equal: ParamCounts.active less the excluded parts."""
    includes = STATED_INCLUDES.get(model.id, DEFAULT_INCLUDES) if includes is None else includes
    counts = count_params(model)
    active = counts.active
    if "embedding" in includes["active_excludes"]:
        active -= counts.embedding
    if "lm_head" in includes["active_excludes"]:
        active -= counts.lm_head
    if "active_unmodelled" in includes:
        active += includes["active_unmodelled"][0]
    return active


def relative_error(computed, stated):
    return computed / stated - 1
