"""Measure an accelerator for `roofline calibrate`: kernels, then whole steps of a model's shape.

    roofline measure --model llama-3.1-8b --out h100.jsonl
    roofline measure --model my-tiny.yaml --tiny                 (CPU check of the script)

Needs PyTorch (pip install 'roofline[measure]'); the rest of roofline never imports it. Writes
JSON lines in the format roofline.measurements reads: a header row (kind=device: device name,
torch version, date), then

1. copy and read_reduce: achieved memory bandwidth (device copy; a reduction reading once);
2. matmul: a large square product per dtype (bf16; fp8 through torch._scaled_mm where the GPU
   has fp8 tensor cores);
3. linear: y = x W at batch 1..2048, the memory-bound to compute-bound knee, per dtype;
4. decode_step and prefill: whole forward passes of the model spec's shape (GQA attention with
   sliding windows, dense or MoE feed-forward with routed experts through torch._grouped_mm,
   random weights), over a sweep of batch and context, and the first shapes again with half the
   layers so that per-layer and per-step fixed costs can be told apart.

Every time is the median of many replays of a CUDA graph timed with CUDA events (on a CPU: the
median of a few calls). Shapes that do not fit in memory or the time budget are written as
`*_skipped` rows with the reason. MLA and sparse-attention models are not supported.
"""
import datetime
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # `roofline measure --help` still works; running says what to install (cli/measure_cmd.py)
    torch = F = None

from .errors import RooflineError
from .models import load_model
from .specs import spec_paths

DECODE = [(1, 1024), (1, 8192), (1, 32768), (8, 1024), (8, 8192), (32, 1024), (32, 4096), (64, 1024),
          (64, 4096), (128, 1024), (256, 512), (256, 1024), (512, 512)]
PREFILL = [512, 2048, 8192]
LINEAR_BATCHES = [1, 2, 4, 8, 16, 32, 64, 128, 192, 256, 384, 512, 768, 1024, 2048]
TINY = dict(decode=[(1, 16), (4, 32), (8, 16)], prefill=[16, 32], linear=[1, 4, 16, 64], elements=1 << 18,
            matmul=128, linear_kn=(128, 256))


@dataclass
class Options:
    """What to measure (the options of `roofline measure`, roofline/cli/measure_cmd.py)."""
    model: str
    out: str = None            # JSON-lines file (default: measure_<model>.jsonl)
    tiny: bool = False         # tiny kernel shapes and sweeps (checks the script on a CPU)
    budget_s: float = 600.0    # stop starting new shapes after this many seconds
    layers: int = None         # decoder layers to build (default: all that fit)
    reps: int = 30             # timed replays per shape
    skip_kernels: bool = False  # measure whole steps only
    quiet: bool = False        # print no row as it is measured


class Session:
    """Device, dtype, clock and output of one measurement run."""

    def __init__(self, args):
        self.args = args
        self.start = time.time()
        self.cuda = torch.cuda.is_available()
        self.dev = "cuda" if self.cuda else "cpu"
        self.name = torch.cuda.get_device_name() if self.cuda else "cpu"
        self.dtype = torch.bfloat16
        self.out = open(args.out, "w", encoding="utf-8")

    def left(self):
        return self.args.budget_s - (time.time() - self.start)

    def emit(self, **row):
        row["device"] = self.name
        self.out.write(json.dumps(row) + "\n")
        self.out.flush()
        if not self.args.quiet:
            shown = {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in row.items() if k != "device"}
            print(" ".join(f"{k}={v}" for k, v in shown.items()), flush=True)

    def free_bytes(self):
        return torch.cuda.mem_get_info()[0] if self.cuda else 8 << 30

    def time(self, fn, reps=None):
        """Median seconds of one call of `fn`: CUDA-graph replays timed by events, else perf_counter."""
        reps = reps or self.args.reps
        if not self.cuda:
            fn()
            samples = []
            for _ in range(3):
                t = time.perf_counter()
                fn()
                samples.append(time.perf_counter() - t)
            return statistics.median(samples)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                fn()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn()
        graph.replay()
        torch.cuda.synchronize()
        samples = []
        for _ in range(reps):
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            graph.replay()
            end.record()
            end.synchronize()
            samples.append(begin.elapsed_time(end) / 1e3)
        del graph
        return statistics.median(samples)

    def release(self):
        if self.cuda:
            torch.cuda.empty_cache()


# --------------------------------------------------------------------------- kernels
def measure_kernels(s):
    tiny = s.args.tiny
    _measure_bandwidth(s, TINY["elements"] if tiny else 1 << 31)        # 2^31 bf16 values = 4.29 GB
    s.release()
    m = TINY["matmul"] if tiny else 8192
    for dtype, run in _matmul_runners(s, m, m, m).items():
        t = s.time(run, reps=20)
        s.emit(kind="matmul", m=m, n=m, k=m, dtype=dtype, seconds=t, tflops=2 * m ** 3 / t / 1e12)
    k, n = TINY["linear_kn"] if tiny else (8192, 28672)
    for batch in (TINY["linear"] if tiny else LINEAR_BATCHES):
        if s.left() < 10:
            s.emit(kind="linear_skipped", batch=batch, reason="time budget spent")
            break
        for dtype, run in _matmul_runners(s, batch, k, n).items():
            size = 2 if dtype == "bf16" else 1
            t = s.time(run)
            s.emit(kind="linear", batch=batch, k=k, n=n, dtype=dtype, weight_bytes=k * n * size, seconds=t,
                   tflops=2 * batch * k * n / t / 1e12, gbps=(k * n * size + batch * (k + n) * size) / t / 1e9)
    s.release()


def _measure_bandwidth(s, n):
    """Device copy (bytes read + written) and a reduction reading n bf16 values once."""
    src = torch.randn(n, device=s.dev, dtype=s.dtype)
    dst = torch.empty_like(src)
    t = s.time(lambda: dst.copy_(src), reps=20)
    s.emit(kind="copy", bytes_moved=2 * n * 2, seconds=t, gbps=4 * n / t / 1e9)
    rows = src.view(1024, -1)
    acc = torch.empty(1024, device=s.dev, dtype=torch.float32)
    t = s.time(lambda: torch.sum(rows, dim=1, dtype=torch.float32, out=acc), reps=20)
    s.emit(kind="read_reduce", bytes_moved=2 * n, seconds=t, gbps=2 * n / t / 1e9)


def _matmul_runners(s, m, k, n):
    """{dtype: callable computing an m x k by k x n product}: bf16, and fp8 where the GPU runs it."""
    a = torch.randn(m, k, device=s.dev, dtype=s.dtype)
    w = torch.randn(k, n, device=s.dev, dtype=s.dtype) * 0.02
    out = torch.empty(m, n, device=s.dev, dtype=s.dtype)
    runners = {"bf16": lambda: torch.matmul(a, w, out=out)}
    if s.cuda and torch.cuda.get_device_capability() >= (8, 9) and m % 16 == 0:
        try:
            a8 = a.to(torch.float8_e4m3fn)
            w8 = w.t().contiguous().to(torch.float8_e4m3fn).t()           # column-major, as cuBLASLt wants
            one = torch.ones((), device=s.dev, dtype=torch.float32)
            torch._scaled_mm(a8, w8, scale_a=one, scale_b=one, out_dtype=s.dtype)
            runners["fp8"] = lambda: torch._scaled_mm(a8, w8, scale_a=one, scale_b=one, out_dtype=s.dtype)
        except (RuntimeError, TypeError) as exc:
            s.emit(kind="matmul_skipped", m=m, k=k, n=n, dtype="fp8", reason=repr(exc)[:200])
    return runners


# --------------------------------------------------------------------------- a model of the spec's shape
class Transformer:
    """Random weights in the shape of a model spec: GQA attention (windows), dense or MoE FFN."""

    def __init__(self, model, layers, s):
        if model.attention.kind != "gqa" or model.attention.sparse is not None:
            raise RooflineError(f"roofline measure supports GQA attention; {model.id} uses "
                                f"{'sparse ' if model.attention.sparse else ''}{model.attention.kind}")
        self.m, self.s, self.dev, self.dt = model, s, s.dev, s.dtype
        self.layers = [self._layer(i) for i in range(layers)]
        h, v = model.hidden_size, model.vocab_size
        self.embedding = self._w(v, h)
        self.head = self.embedding.t() if model.tie_embeddings else self._w(h, v)
        self.norm = torch.ones(h, device=self.dev, dtype=self.dt)

    def _w(self, *shape):
        return torch.randn(*shape, device=self.dev, dtype=self.dt) * 0.02

    def _layer(self, index):
        m, h = self.m, self.m.hidden_size
        q, kv = m.num_heads * m.head_dim, m.num_kv_heads * m.head_dim
        up = 2 if m.ffn == "gated" else 1
        layer = dict(ln1=torch.ones(h, device=self.dev, dtype=self.dt), wqkv=self._w(h, q + 2 * kv),
                     wo=self._w(q, h), ln2=torch.ones(h, device=self.dev, dtype=self.dt), local=m.is_local(index))
        if m.is_moe(index):
            e = m.moe
            layer.update(router=self._w(h, e.num_experts), experts_up=self._w(e.num_experts, h, up * e.expert_intermediate_size),
                         experts_down=self._w(e.num_experts, e.expert_intermediate_size, h))
            if e.num_shared_experts:
                inter = e.num_shared_experts * e.shared_intermediate_size
                layer.update(up=self._w(h, up * inter), down=self._w(inter, h))
        else:
            layer.update(up=self._w(h, up * m.intermediate_size), down=self._w(m.intermediate_size, h))
        return layer

    def weight_bytes(self):
        tensors = [t for layer in self.layers for t in layer.values() if torch.is_tensor(t)]
        return sum(t.numel() * t.element_size() for t in tensors) + self.head.numel() * 2

    def _ffn(self, layer, x):
        gated = self.m.ffn == "gated"

        def act(y):
            if gated:
                g, u = y.chunk(2, -1)
                return F.silu(g) * u
            return F.gelu(y)
        out = 0
        if "router" in layer:
            e = self.m.moe
            flat = x.reshape(-1, x.shape[-1])
            scores, experts = torch.topk(flat @ layer["router"], e.experts_per_token, dim=-1)
            weights = torch.softmax(scores.float(), -1).to(self.dt).reshape(-1, 1)
            expert_ids = experts.reshape(-1)
            order = torch.argsort(expert_ids, stable=True)
            tokens = order // e.experts_per_token
            counts = torch.zeros(e.num_experts, device=self.dev, dtype=torch.int32)
            counts.scatter_add_(0, expert_ids.to(torch.int32), torch.ones_like(expert_ids, dtype=torch.int32))
            offsets = torch.cumsum(counts, 0, dtype=torch.int32)
            hidden = act(torch._grouped_mm(flat[tokens], layer["experts_up"], offs=offsets))
            routed = torch._grouped_mm(hidden, layer["experts_down"], offs=offsets) * weights[order]
            out = torch.zeros_like(flat).index_add_(0, tokens, routed).reshape(x.shape)
        if "up" in layer:
            out = out + act(x @ layer["up"]) @ layer["down"]
        return out

    def forward(self, ids, kcache, vcache, cached, layers):
        """Logits of the last position of `ids` [B, q] after `cached` tokens, through `layers` layers."""
        m = self.m
        batch, q = ids.shape
        x = self.embedding[ids]
        total = cached + q
        window = m.attention.sliding_window
        for i, layer in enumerate(self.layers[:layers]):
            h = F.rms_norm(x, (x.shape[-1],), layer["ln1"], 1e-5)
            qh, k, v = (h @ layer["wqkv"]).split([m.num_heads * m.head_dim, m.num_kv_heads * m.head_dim,
                                                  m.num_kv_heads * m.head_dim], -1)
            kcache[i][:, :, cached:total].copy_(k.view(batch, q, m.num_kv_heads, m.head_dim).transpose(1, 2))
            vcache[i][:, :, cached:total].copy_(v.view(batch, q, m.num_kv_heads, m.head_dim).transpose(1, 2))
            qh = qh.view(batch, q, m.num_heads, m.head_dim).transpose(1, 2)
            first, mask = 0, None
            if layer["local"] and window is not None:
                if q == 1:
                    first = max(0, total - window - m.attention.sink_tokens)
                elif total > window:
                    pos = torch.arange(total, device=self.dev)
                    mask = (pos[None, :] <= pos[:, None]) & (pos[:, None] - pos[None, :] < window)
            keys, values = kcache[i][:, :, first:total], vcache[i][:, :, first:total]
            o = F.scaled_dot_product_attention(qh, keys, values, attn_mask=mask, is_causal=(q > 1 and mask is None),
                                               enable_gqa=True)
            x = x + o.transpose(1, 2).reshape(batch, q, -1) @ layer["wo"]
            x = x + self._ffn(layer, F.rms_norm(x, (x.shape[-1],), layer["ln2"], 1e-5))
        return F.rms_norm(x[:, -1:], (x.shape[-1],), self.norm, 1e-5) @ self.head


def _layers_that_fit(model, s):
    """Layers whose bf16 weights fit in 60% of free memory (embedding and head included)."""
    from .params import count_params
    counts = count_params(model)
    per_layer = (counts.total - 2 * model.hidden_size * model.vocab_size) / model.num_layers * 2
    room = 0.6 * s.free_bytes() - 2 * 2 * model.hidden_size * model.vocab_size
    return max(1, min(model.num_layers, int(room // max(per_layer, 1))))


def measure_steps(s, model, model_name):
    layers = s.args.layers or _layers_that_fit(model, s)
    if layers < model.num_layers and not s.args.layers:
        print(f"note: {model.id} has {model.num_layers} layers; {layers} fit in memory and are measured", flush=True)
    try:
        net = Transformer(model, layers, s)
    except RuntimeError as exc:
        s.emit(kind="decode_skipped", model=model_name, layers=layers, reason=repr(exc)[:200])
        return
    kv_token_layer = 2 * model.num_kv_heads * model.head_dim * 2
    decode = TINY["decode"] if s.args.tiny else DECODE
    halves = {decode[0], decode[min(len(decode) - 1, 7)]} if layers >= 2 else set()
    shapes = [(b, c, layers) for b, c in decode] + [(b, c, layers // 2) for b, c in decode if (b, c) in halves]
    common = dict(model=model_name, dtype="bf16", weight_bytes=net.weight_bytes())
    for batch, context, run_layers in shapes:
        if context + 1 > model.max_context:
            continue
        need = kv_token_layer * layers * batch * (context + 1)
        if s.left() < 15 or need > 0.9 * (s.free_bytes() - (1 << 30)):
            s.emit(kind="decode_skipped", model=model_name, layers=run_layers, batch=batch, ctx=context,
                   reason="time budget spent" if s.left() < 15 else "KV cache does not fit")
            continue
        _time_pass(s, net, "decode_step", batch, context, 1, run_layers, dict(common, layers=run_layers, batch=batch,
                                                                          ctx=context))
    for prompt in (TINY["prefill"] if s.args.tiny else PREFILL):
        if prompt > model.max_context or s.left() < 15:
            continue
        _time_pass(s, net, "prefill", 1, 0, prompt, layers, dict(common, layers=layers, batch=1, prompt=prompt))


def _time_pass(s, net, kind, batch, cached, query, layers, row):
    m = net.m
    shape = (batch, m.num_kv_heads, cached + query, m.head_dim)
    try:
        kcache = [torch.randn(shape, device=s.dev, dtype=s.dtype) for _ in range(layers)]
        vcache = [torch.randn(shape, device=s.dev, dtype=s.dtype) for _ in range(layers)]
        ids = torch.randint(0, m.vocab_size, (batch, query), device=s.dev)
        with torch.no_grad():
            seconds = s.time(lambda: net.forward(ids, kcache, vcache, cached, layers),
                             reps=None if kind == "decode_step" else max(5, s.args.reps // 3))
    except (RuntimeError, NotImplementedError) as exc:       # one failed shape must not lose the others
        s.emit(kind=f"{kind}_error", **{k: v for k, v in row.items() if k != "weight_bytes"}, error=repr(exc)[:300])
        return
    finally:
        s.release()
    tokens = batch * query
    s.emit(kind=kind, **row, seconds=seconds, tok_s=tokens / seconds,
           kv_bytes=2 * m.num_kv_heads * m.head_dim * 2 * layers * batch * (cached + query))


def run(args):
    """Measure what `args` (an Options) asks for and write it; returns 0. Needs PyTorch."""
    model = load_model(args.model)
    name = model.id if spec_paths("model").get(model.id) == Path(model.path) else str(Path(model.path).resolve())
    args.out = args.out or f"measure_{model.id}.jsonl"
    s = Session(args)
    s.out.write(json.dumps({"kind": "device", "device": s.name, "torch": torch.__version__,
                            "cuda": torch.version.cuda, "date": datetime.datetime.now(datetime.timezone.utc)
                            .isoformat(timespec="seconds"), "tiny": args.tiny, "model": name}) + "\n")
    torch.manual_seed(0)
    if not args.skip_kernels:
        measure_kernels(s)
    try:
        measure_steps(s, model, name)
    except RooflineError as exc:
        s.emit(kind="decode_skipped", model=name, reason=str(exc))
    s.out.close()
    print(f"wrote {args.out} in {time.time() - s.start:.1f} s on {s.name}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit("the command is `roofline measure` (roofline measure --help lists its options)")
