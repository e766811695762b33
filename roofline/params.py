"""Parameter counts from the architecture: per tensor class, total and active per token.

Counts are sums of matrix shapes (each matrix of a linear layer is in_features x out_features),
plus biases and norm weights. They work on plain ints and on sympy symbols alike. Reference
architectures: Llama (Touvron et al. 2023, arXiv 2302.13971), Mixtral (arXiv 2401.04088),
DeepSeek-V3 MLA and MoE (arXiv 2412.19437, Sec. 2.1), DeepSeek-V3.2 indexer (DeepSeek_V3_2.pdf).
"""
from dataclasses import dataclass


def ffn_params(hidden, intermediate, gated=True):
    """Weights of one feed-forward block: 3 h I (gate, up, down) if gated, else 2 h I [1]."""
    return (3 if gated else 2) * hidden * intermediate


def gqa_attention_params(hidden, heads, kv_heads, head_dim, qkv_bias=False, o_bias=False, qk_norm=False,
                         learned_sinks=False):
    """Weights of one GQA/MHA/MQA attention block [1].

    .. math:: h (H d) + 2 h (H_{kv} d) + (H d) h \\; (+ (H + 2 H_{kv}) d + h \\text{ biases})
    """
    q, kv = heads * head_dim, kv_heads * head_dim
    params = hidden * q + 2 * hidden * kv + q * hidden
    params += (q + 2 * kv) * qkv_bias + hidden * o_bias + 2 * head_dim * qk_norm + heads * learned_sinks
    return params


def mla_attention_params(hidden, heads, q_lora_rank, kv_lora_rank, qk_nope_head_dim, qk_rope_head_dim,
                         v_head_dim):
    """Weights of one multi-head latent attention block (DeepSeek-V2/V3) [1].

    q: h r_q + r_q H (d_nope + d_rope) (or h H (d_nope + d_rope) without query compression);
    kv: h (r_kv + d_rope) + r_kv H (d_nope + d_v); out: H d_v h; plus the two latent norms.
    """
    qk_dim = qk_nope_head_dim + qk_rope_head_dim
    if q_lora_rank:
        query = hidden * q_lora_rank + q_lora_rank + q_lora_rank * heads * qk_dim
    else:
        query = hidden * heads * qk_dim
    kv = hidden * (kv_lora_rank + qk_rope_head_dim) + kv_lora_rank + kv_lora_rank * heads * (qk_nope_head_dim + v_head_dim)
    return query + kv + heads * v_head_dim * hidden


def indexer_params(hidden, q_lora_rank, index_heads, index_head_dim):
    """Weights of a DeepSeek-V3.2 lightning indexer: wq_b, wk, its LayerNorm and the head weights [1]."""
    return q_lora_rank * index_heads * index_head_dim + hidden * index_head_dim + 2 * index_head_dim \
        + hidden * index_heads


def attention_params(model):
    """Attention weights of one layer of `model` (GQA or MLA, with a sparse indexer if any) [1]."""
    a = model.attention
    if a.kind == "mla":
        params = mla_attention_params(model.hidden_size, model.num_heads, a.q_lora_rank, a.kv_lora_rank,
                                      a.qk_nope_head_dim, a.qk_rope_head_dim, a.v_head_dim)
    else:
        params = gqa_attention_params(model.hidden_size, model.num_heads, model.num_kv_heads, model.head_dim,
                                      a.qkv_bias, a.o_bias, a.qk_norm, a.learned_sinks)
    if a.sparse is not None:
        params += indexer_params(model.hidden_size, a.q_lora_rank or model.hidden_size, a.sparse.index_heads,
                                 a.sparse.index_head_dim)
    return params


def expert_params(model):
    """Weights of one routed expert (with its biases) [1]."""
    moe, gated = model.moe, model.ffn == "gated"
    bias = ((2 if gated else 1) * moe.expert_intermediate_size + model.hidden_size) * moe.expert_bias
    return ffn_params(model.hidden_size, moe.expert_intermediate_size, gated) + bias


def shared_expert_params(model):
    """Weights of the always-active shared experts of one MoE layer [1]."""
    moe = model.moe
    return moe.num_shared_experts * ffn_params(model.hidden_size, moe.shared_intermediate_size, model.ffn == "gated")


def router_params(model):
    """Router (gate) weights of one MoE layer: h E (+ E bias) [1]."""
    return model.moe.num_experts * (model.hidden_size + model.moe.router_bias)


@dataclass(frozen=True)
class ParamCounts:
    """Parameters by tensor class [1]."""
    embedding: float
    lm_head: float          # 0 when tied to the embedding
    attention: float        # all layers
    dense_ffn: float        # dense layers' FFNs
    shared_experts: float
    routed_experts: float   # all routed experts of all MoE layers
    router: float
    norms: float
    mtp: float              # multi-token-prediction layers, not part of `total`
    active_routed: float    # routed expert weights one token uses

    @property
    def total(self):
        return (self.embedding + self.lm_head + self.attention + self.dense_ffn + self.shared_experts
                + self.routed_experts + self.router + self.norms)

    @property
    def active(self):
        """Parameters one token touches: all but the routed experts it does not use."""
        return self.total - self.routed_experts + self.active_routed

    @property
    def non_expert(self):
        """Everything but the routed experts (stored at the `weights` dtype)."""
        return self.total - self.routed_experts


def count_params(model):
    """ParamCounts of a model spec, from its architecture alone."""
    h = model.hidden_size
    moe_layers = model.num_moe_layers
    dense_layers = model.num_layers - moe_layers
    attention = attention_params(model)
    per_layer_norms = 2 * h
    routed = active_routed = shared = router = 0
    if model.moe is not None:
        routed = moe_layers * model.moe.num_experts * expert_params(model)
        active_routed = moe_layers * model.moe.experts_per_token * expert_params(model)
        shared = moe_layers * shared_expert_params(model)
        router = moe_layers * router_params(model)
    mtp = 0
    if model.mtp_layers:
        # one decoder layer (MoE if the model has MoE) + projection of [embedding; hidden] + 3 norms
        layer = attention + per_layer_norms + (
            model.moe.num_experts * expert_params(model) + shared_expert_params(model) + router_params(model)
            if model.moe else ffn_params(h, model.intermediate_size, model.ffn == "gated"))
        mtp = model.mtp_layers * (layer + 2 * h * h + 3 * h)
    return ParamCounts(
        embedding=model.vocab_size * h,
        lm_head=0 if model.tie_embeddings else model.vocab_size * h,
        attention=model.num_layers * attention,
        dense_ffn=dense_layers * ffn_params(h, model.intermediate_size, model.ffn == "gated"),
        shared_experts=shared, routed_experts=routed, router=router,
        norms=model.num_layers * per_layer_norms + h, mtp=mtp, active_routed=active_routed)
