"""What a step costs on a wafer beyond streaming its weights: each matrix-vector product crossing the
cores that hold its matrix.

A wafer-scale chip (Cerebras WSE) is a 2D mesh of cores, each with its own SRAM; a weight matrix is
pinned to the block of cores whose memory holds it, so a matrix holding a share x of the chip's
memory spans a share x of its cores, a block sqrt(x) of the mesh wide and tall. A matrix-vector
product (GEMV) broadcasts its input along the rows of that block and reduces partial sums along its
columns: its latency grows with the distance crossed, sqrt(x) of the wafer's side, not with the bytes
(which the SRAM streams in microseconds). The GEMVs of a layer run one after another (each needs the
previous one's output), so a token pays

.. math:: t_{mesh} = \\tau \\sum_{layers} \\sum_{g \\in layer} \\sqrt{Q_g / C}

where Q_g are the weight bytes of GEMV phase g on one chip, C the chip's memory capacity and tau
(calibration parameter `mesh_traversal`) the time to cross the whole mesh once each way. A phase is
the matrices that read the same input at once: GQA's fused QKV projection and its output
projection; MLA (absorbed decode, DeepSeek-V2 arXiv 2405.04434 App. C) its q_a and kv_a down
projections together, q_b, the key and value halves of kv_b and the output projection; a gated
FFN's gate and up projections together, then down; an MoE layer's router, then all its routed
experts (the k a token picks sit somewhere in the block that holds them all) with the shared experts
beside them, once for gate and up, once for down; the LM head. References: WaferLLM (He et al.,
OSDI 2025, arXiv 2502.04563), whose PLMR model names the mesh's distance-dependent latency and
builds its GEMV as a broadcast along rows and a reduction along columns of a core block; Cerebras
WSE-3: 44 GB SRAM over 900,000 cores, each core's memory its own (hardware_specs/wse-3.yaml).

Only chips of kind "wafer" pay it: elsewhere a matrix is not pinned to cores.
"""
from . import dtypes
from .params import expert_params, router_params, shared_expert_params


def layer_phases(model, moe, tp=1, expert_chips=1):
    """Weight bytes of each sequential GEMV phase of one layer on one chip [B] (module docstring).

    Attention, dense-FFN, router and shared-expert weights divide over `tp`; routed experts over
    min(expert_chips, N). The sparse-attention indexer of DeepSeek-V3.2 is not counted.
    """
    w = dtypes.bytes_per_value(model.dtypes["weights"]) / tp
    h, a = model.hidden_size, model.attention
    if a.kind == "mla":
        qk = a.qk_nope_head_dim + a.qk_rope_head_dim
        kv_a = h * (a.kv_lora_rank + a.qk_rope_head_dim)
        query = [h * a.q_lora_rank + kv_a, a.q_lora_rank * model.num_heads * qk] if a.q_lora_rank \
            else [h * model.num_heads * qk + kv_a]
        phases = query + [a.kv_lora_rank * model.num_heads * a.qk_nope_head_dim,
                          a.kv_lora_rank * model.num_heads * a.v_head_dim,
                          model.num_heads * a.v_head_dim * h]
    else:
        q, kv = model.num_heads * model.head_dim, model.num_kv_heads * model.head_dim
        phases = [h * (q + 2 * kv), q * h]
    phases = [p * w for p in phases]
    gated = model.ffn == "gated"
    up_share = 2 / 3 if gated else 1 / 2
    if moe:
        e = dtypes.bytes_per_value(model.dtypes["experts"]) / min(expert_chips, model.moe.num_experts)
        routed = model.moe.num_experts * expert_params(model) * e
        shared = shared_expert_params(model) * w
        return phases + [router_params(model) * w, (routed + shared) * up_share, (routed + shared) * (1 - up_share)]
    ffn = (3 if gated else 2) * h * model.intermediate_size * w
    return phases + [ffn * up_share, ffn * (1 - up_share)]


def mesh_span(model, hardware, tp=1, expert_chips=1):
    """The sum over every layer's GEMV phases (and the LM head) of sqrt(Q_g / C) [1]: what a token's
    traversals of the mesh add up to, in crossings of a whole wafer (module docstring). 0 on a chip
    that is not a wafer. Works on numbers and on sympy expressions."""
    if hardware.kind != "wafer":
        return 0.0
    capacity = hardware.mem_capacity

    def span(phases):
        return sum((q / capacity) ** 0.5 for q in phases)

    moe_layers = model.num_moe_layers if model.moe else 0
    total = (model.num_layers - moe_layers) * span(layer_phases(model, False, tp, expert_chips))
    if moe_layers:
        total = total + moe_layers * span(layer_phases(model, True, tp, expert_chips))
    head = model.vocab_size * model.hidden_size * dtypes.bytes_per_value(model.dtypes["weights"]) / tp
    return total + (head / capacity) ** 0.5
