"""Collectives over a chip network: all-reduce and all-to-all by fabric and level, stage hops.

A network has up to two levels: a scale-up fabric joining `domain` chips (NVLink + NVSwitch in an
8-GPU HGX node or a 72-GPU NVL72, AMD Infinity Fabric, TPU ICI) and a scale-out network between
domains (InfiniBand, Ethernet: one NIC per chip). Each level is one of three fabrics (the
`fabric` of a link spec):

- switched: every chip reaches every other through one switch crossing at its full per-direction
  bandwidth BW, shared over the peers it talks to at once;
- point-to-point: a full mesh of the domain, one link of BW / (D - 1) to each of the D - 1 peers;
  a group smaller than the domain leaves the links to the others idle;
- torus: neighbours only; a group runs rings along the torus axes it spans.

Each crossing pays alpha [s]: in calibrated mode the link's latency (or the calibration's fitted
one) plus the fitted fixed cost of a collective; ideal mode charges no latency at all (no sourced
physical minimum per crossing is in the link specs), so it stays a lower bound. Every function
returns Terms (latency part, bandwidth part) and works on floats, numpy arrays and sympy alike.

Which all-reduce runs depends on the engine's collective library (LIBRARIES): the custom kernels of
vLLM, SGLang and TensorRT-LLM (one-shot / two-shot, "custom"), or NCCL / RCCL, whose rings step
through every rank ("nccl", "rccl": PyTorch's torch.distributed and funcol, lmdeploy TurboMind
until 2024, vLLM on ROCm in 2024).
"""
import math
from dataclasses import dataclass

from .errors import RooflineError
from .mathops import maximum, where


@dataclass(frozen=True)
class Terms:
    """Time of a transfer split into its latency and bandwidth parts [s]."""
    latency: object
    bandwidth: object

    @property
    def time(self):
        return self.latency + self.bandwidth


def zero_terms(like):
    return Terms(0 * like, 0 * like)


def faster(a, b):
    """The terms of whichever of two algorithms takes less time (elementwise): an engine's choice by
    message size (TensorRT-LLM's AllReduceStrategy AUTO, NCCL's tuner)."""
    pick = a.time <= b.time
    return Terms(where(pick, a.latency, b.latency), where(pick, a.bandwidth, b.bandwidth))


def later(a, b):
    """The terms of whichever of two concurrent transfers (on different links) ends last."""
    pick = a.time >= b.time
    return Terms(where(pick, a.latency, b.latency), where(pick, a.bandwidth, b.bandwidth))


def then(a, b):
    """Two transfers one after the other."""
    return Terms(a.latency + b.latency, a.bandwidth + b.bandwidth)


@dataclass(frozen=True)
class Fabric:
    """One level of a network as a collective sees it."""
    kind: str                 # switched | point-to-point | torus
    bandwidth: float          # [B/s] per direction per chip, all of the chip's ports on this level
    latency: float            # [s] per crossing, in the mode being evaluated
    domain: float = math.inf  # chips this level joins
    dimensions: int = 1       # torus axes
    level: str = "scale-up"   # scale-up | scale-out: which of a library's per-step latencies applies


@dataclass(frozen=True)
class Network:
    """A two-level network: scale-up fabric over `domain` chips, scale-out between domains."""
    up: Fabric = None
    out: Fabric = None
    library: str = "custom"         # collective library of the engine (LIBRARIES)
    library_latency: bool = False   # charge the library's own latencies (calibrated mode; never in ideal)

    @property
    def domain(self):
        return self.up.domain if self.up is not None else 1


def per_peer_bandwidth(fabric, chips):
    """Bandwidth from one chip to each of the chips - 1 others of its group, all sending at once [B/s]:
    BW / (n - 1) through a switch, BW / (D - 1) over the dedicated links of a full mesh."""
    if fabric.kind == "point-to-point" and math.isfinite(fabric.domain):
        return fabric.bandwidth / (fabric.domain - 1)
    return fabric.bandwidth / (chips - 1)


def torus_axes(chips, dimensions):
    """Axis lengths of a group of `chips` laid out on a torus of `dimensions` axes, as even as the
    prime factors allow (8 chips on a 2D torus: 4 x 2)."""
    axes = [1] * dimensions
    factors, rest, p = [], chips, 2
    while rest > 1:
        while rest % p == 0:
            factors.append(p)
            rest //= p
        p += 1
    for factor in sorted(factors, reverse=True):
        axes[axes.index(min(axes))] *= factor
    return sorted(axes, reverse=True)


# Crossings of the switch an all-reduce waits for, as the custom all-reduce kernels of TensorRT-LLM
# and vLLM run it (pull mode: NVIDIA/TensorRT-LLM cpp/tensorrt_llm/kernels/customAllReduceKernels.cu,
# oneShotAllReduceKernel and twoShotAllReduceKernel; vllm csrc/custom_all_reduce.cuh): a barrier
# (each rank writes a flag to its peers: one crossing), then a read of the peers' buffers (request
# and reply: two crossings). Two-shot runs that twice (reduce-scatter, then all-gather).
ONE_SHOT_CROSSINGS = 3
TWO_SHOT_CROSSINGS = 6


def one_shot_allreduce(message_bytes, chips, fabric):
    """Each chip reads every peer's whole buffer and reduces locally [s].

    .. math:: t = 3 \\alpha + \\frac{S}{\\beta}, \\quad \\beta = BW/(n-1) \\text{ (switch) or } BW/(D-1) \\text{ (mesh)}

    TensorRT-LLM's ONESHOT strategy and vLLM's one-stage custom all-reduce, picked for small
    messages; three crossings (ONE_SHOT_CROSSINGS).
    """
    return Terms(ONE_SHOT_CROSSINGS * fabric.latency + 0 * message_bytes,
                 message_bytes / per_peer_bandwidth(fabric, chips))


def two_shot_allreduce(message_bytes, chips, fabric):
    """Reduce-scatter, then all-gather, each a direct exchange of S/n slices [s].

    .. math:: t = 6 \\alpha + \\frac{2 S / n}{\\beta}
              \\; (= 6\\alpha + \\frac{2(n-1)}{n} \\frac{S}{BW} \\text{ through a switch})

    The bandwidth term is the ring optimum (nccl-tests PERFORMANCE.md: busbw = algbw 2(n-1)/n)
    without the ring's 2(n-1) steps (TensorRT-LLM TWOSHOT, vLLM two-stage); six crossings.
    """
    return Terms(TWO_SHOT_CROSSINGS * fabric.latency + 0 * message_bytes,
                 2 * message_bytes / chips / per_peer_bandwidth(fabric, chips))


def torus_allreduce(message_bytes, chips, fabric):
    """Bidirectional rings along each torus axis the group spans, all axes at once [s].

    .. math:: t = 2 \\sum_i (k_i - 1) \\, \\alpha + \\frac{2 (n-1)}{n} \\frac{S}{BW \\, a / d}

    k_i: the group's length along axis i (torus_axes), a of the d axes used; each axis has 2 of
    the chip's 2d ports (jax-ml scaling-book, "sharded matrices": multi-axis collectives use every
    axis' links at once).
    """
    axes = [k for k in torus_axes(chips, fabric.dimensions) if k > 1]
    share = len(axes) / fabric.dimensions
    return Terms(2 * sum(k - 1 for k in axes) * fabric.latency + 0 * message_bytes,
                 2 * (chips - 1) / chips * message_bytes / (fabric.bandwidth * share))


#: Collective libraries an engine all-reduces with (Network.library)
LIBRARIES = ("custom", "nccl", "rccl")

def check_library(library):
    """`library` if it is one of LIBRARIES, else RooflineError naming the choices."""
    if library not in LIBRARIES:
        raise RooflineError(f"collective library must be one of {', '.join(LIBRARIES)}, got {library!r}")
    return library


# Latency model of the NCCL-family ring all-reduce, from each library's own tuner (the figures its
# algorithm/protocol choice rests on), per protocol: (fixed latency [s], per-step latency [s] on a
# scale-up link, on a scale-out network), and the share of the link bandwidth the protocol moves.
# NCCL: NVIDIA/nccl src/graph/tuning.cc (a 2.2x release, with NVLS and MNNVL): baseLat ring LL
# 6.6 us, Simple 8.4 us; hwLat NVLink ring LL 0.6 us, Simple 3.4 us; NET ring LL 2.7 us, Simple
# 14.0 us; LL ring busBw x 1/4 (LL sends a 4-byte flag with every 4 bytes of data and polls on it). RCCL: ROCm/rccl
# src/graph/tuning.cc (tuning_model_0): baseLat ring LL 12.0 us, Simple 17.0 us; hwLat xGMI
# ("NVLINK") ring LL 0.8 us, Simple 3.6 us; NET ring LL 9.5 us, Simple 15.1 us.
RING_PROTOCOLS = {
    "nccl": {"LL": (6.6e-6, {"scale-up": 0.6e-6, "scale-out": 2.7e-6}, 1 / 4),
             "Simple": (8.4e-6, {"scale-up": 3.4e-6, "scale-out": 14.0e-6}, 1.0)},
    "rccl": {"LL": (12.0e-6, {"scale-up": 0.8e-6, "scale-out": 9.5e-6}, 1 / 4),
             "Simple": (17.0e-6, {"scale-up": 3.6e-6, "scale-out": 15.1e-6}, 1.0)},
}


def library_ring_allreduce(message_bytes, chips, fabric, library, charge_latency, base=True):
    """NCCL/RCCL ring all-reduce over one fabric, with the protocol its tuner picks for the size [s].

    .. math:: t = \\min_{p \\in \\{LL, Simple\\}} \\left[ a_p + 2 (n - 1) \\, s_p
              + \\frac{2 (n-1)}{n} \\frac{S}{\\eta_p \\, BW} \\right]

    a_p: the library's fixed latency of protocol p (only with `base`), s_p its latency per ring
    step on this fabric's level, eta_p the share of the bandwidth the protocol moves (RING_PROTOCOLS;
    NCCL's own cost model, src/graph/tuning.cc). BW is what the group's rings can use: all of a
    switch port, n - 1 of the D - 1 links of a full mesh (rings over several channels use them all).
    A ring crosses 2 (n - 1) steps whatever the fabric, which is why a library all-reduce grows with
    the rank count where the custom one-shot does not. Ideal mode (charge_latency False) keeps only
    the bandwidth term: with Simple's eta = 1 it is the ring optimum, the same as the custom
    two-shot's, so ideal stays a lower bound.
    """
    steps = 2 * (chips - 1)
    bandwidth = per_peer_bandwidth(fabric, chips) * (chips - 1)   # the group's own links (a mesh: n - 1 of D - 1)
    best = None
    for base_latency, step_latency, efficiency in RING_PROTOCOLS[library].values():
        latency = (base_latency * base + steps * step_latency[fabric.level]) if charge_latency else 0.0
        terms = Terms(latency + 0 * message_bytes, steps / chips * message_bytes / (efficiency * bandwidth))
        best = terms if best is None else faster(best, terms)
    return best


def allreduce_one_level(message_bytes, chips, fabric, network=None, base=True):
    """All-reduce over one fabric with the algorithm an engine picks for the message size [s]:
    a ring per torus axis; the library's ring where the engine all-reduces with NCCL or RCCL
    (network.library); else the faster of the custom one-shot and two-shot."""
    if chips <= 1:
        return zero_terms(message_bytes)
    if fabric.kind == "torus":
        return torus_allreduce(message_bytes, chips, fabric)
    if network is not None and network.library != "custom":
        return library_ring_allreduce(message_bytes, chips, fabric, network.library, network.library_latency, base)
    return faster(one_shot_allreduce(message_bytes, chips, fabric), two_shot_allreduce(message_bytes, chips, fabric))


def allreduce(message_bytes, chips, network):
    """All-reduce of a `message_bytes` buffer over `chips` chips of `network` [s].

    Inside the scale-up domain: allreduce_one_level. Wider: hierarchical, as NCCL and the Gaudi
    collectives do (docs.habana.ai Network Configuration: "implemented in a hierarchical manner"):
    reduce-scatter inside each domain, all-reduce of the S/D slices across the n/D domains over
    scale-out (every chip's own NIC carries its slice), all-gather inside.

    .. math:: t = t_{RS+AG,up}(S, D) + t_{AR,out}(S / D, n / D)
    """
    domain = network.domain
    if chips <= 1:
        return zero_terms(message_bytes)
    if chips <= domain:
        return allreduce_one_level(message_bytes, chips, network.up, network)
    if network.up is None or domain <= 1:
        return allreduce_one_level(message_bytes, chips, network.out, network)
    if network.library != "custom" and network.up.kind != "torus":
        inner = library_ring_allreduce(message_bytes, domain, network.up, network.library, network.library_latency)
    else:
        algorithm = torus_allreduce if network.up.kind == "torus" else two_shot_allreduce
        inner = algorithm(message_bytes, domain, network.up)
    return then(inner, allreduce_one_level(message_bytes / domain, math.ceil(chips / domain), network.out, network,
                                           base=False))


def alltoall_one_level(bytes_out, peers, fabric):
    """All-to-all in which a chip sends `bytes_out` spread evenly over `peers` others [s].

    Switched: one crossing, alpha + S / BW. Full mesh: each peer's share on its own link,
    alpha + S / (peers beta). Torus: the farthest peer is sum floor(k_i / 2) hops away and a byte
    travels the mean ring distance (about k_i / 4 per axis) over the ports of the a axes used.
    """
    if peers < 1:
        return zero_terms(bytes_out)
    if fabric.kind == "torus":
        axes = [k for k in torus_axes(peers + 1, fabric.dimensions) if k > 1]
        hops = sum(sum(min(j, k - j) for j in range(k)) / k for k in axes) * (peers + 1) / peers
        share = len(axes) / fabric.dimensions
        return Terms(sum(k // 2 for k in axes) * fabric.latency + 0 * bytes_out,
                     bytes_out * hops / (fabric.bandwidth * share))
    return Terms(fabric.latency + 0 * bytes_out, bytes_out / (peers * per_peer_bandwidth(fabric, peers + 1)))


def alltoall(near_bytes, far_bytes, chips, network):
    """All-to-all over `chips` chips: `near_bytes` to peers inside the chip's scale-up domain and
    `far_bytes` to chips of other domains, both at once on their own links [s].

    .. math:: t = \\max\\left(t_{up}(S_{near}), \\; t_{out}(S_{far})\\right)
    """
    domain = min(chips, network.domain)
    if network.up is None or domain <= 1:
        return alltoall_one_level(near_bytes + far_bytes, chips - 1, network.out)
    near = alltoall_one_level(near_bytes, domain - 1, network.up)
    if chips <= domain:
        return near
    return later(near, alltoall_one_level(far_bytes, chips - domain, network.out))


def ring_allgather(total_bytes, chips, network):
    """Ring all-gather (or reduce-scatter) of a `total_bytes` buffer, 1/n from each of `chips` chips [s].

    .. math:: t = (n - 1) \\, \\alpha_{slow} + \\frac{n - 1}{n} \\frac{S}{BW_{slow}}

    n - 1 steps in which every chip passes one slice to its ring neighbour; each step waits for the
    slowest hop of the ring: the scale-out crossing when the group spans domains (nccl-tests
    PERFORMANCE.md: all-gather and reduce-scatter bus bandwidth = algbw (n-1)/n, ring only).
    Engines exchange the tokens of data-parallel attention groups with the MoE this way when no
    all-to-all kernel is enabled (TensorRT-LLM's CUTLASS MoE: allgather before, reducescatter after).
    """
    if chips <= 1:
        return zero_terms(total_bytes)
    slow = network.out if chips > network.domain and network.out is not None else (network.up or network.out)
    return Terms((chips - 1) * slow.latency + 0 * total_bytes, (chips - 1) / chips * total_bytes / slow.bandwidth)


def destination_ranks(num_experts, experts_per_token, ranks):
    """Expected number of distinct ranks a token's k routed experts sit on [1].

    .. math:: R = n \\left(1 - \\binom{N - N/n}{k} \\Big/ \\binom{N}{k}\\right)

    N experts spread evenly over n ranks, k chosen uniformly without repeats: a rank is skipped
    when none of the k falls among its N/n. Copies for one rank are sent once (DeepEP dispatch:
    one token per destination rank, deepseek-ai/DeepEP README), so R, not k, copies cross.
    """
    per_rank = num_experts / ranks
    miss = 1.0
    for i in range(experts_per_token):
        miss *= max(num_experts - per_rank - i, 0) / (num_experts - i)
    return ranks * (1 - miss)


def routed_bytes(tokens, copies_per_token, hidden_size, bytes_per_value, chips):
    """Bytes one chip sends in an MoE dispatch (or receives back in the combine) [B].

    .. math:: S = \\frac{T \\, R \\, h \\, b}{n_{ep}}

    The T tokens of a micro-batch are shared evenly by the n_ep chips; each sends R copies of a
    token's hidden state (destination_ranks, or the part of them on one level of the network), of
    h values at b bytes each (DeepSeek-V3, arXiv 2412.19437, Sec. 3.4).
    """
    return tokens * copies_per_token * hidden_size * bytes_per_value / chips


def hop_time(message_bytes, bandwidth, latency):
    """Point-to-point transfer between pipeline stages: alpha + S / BW [s]."""
    return latency + message_bytes / bandwidth


def residual_bytes(tokens, hidden_size, activation_bytes):
    """Bytes of the residual stream of `tokens` tokens: tokens x hidden x bytes per value [B]."""
    return tokens * hidden_size * activation_bytes


def pipeline_cycle(token_time, bottleneck_stage_time, microbatches):
    """Time between two tokens of one sequence in a pipeline with `microbatches` in flight [s].

    .. math:: t_{cycle} = \\max(t_{token}, \\; m \\, t_{stage,max})

    A sequence's next token cannot start before its previous one has crossed every stage
    (t_token); the busiest stage cannot serve its m micro-batches faster than m t_stage,max.
    With m = 1 all other stages idle: per-user latency is t_token, aggregate throughput B / t_token.
    """
    return maximum(token_time, microbatches * bottleneck_stage_time)
