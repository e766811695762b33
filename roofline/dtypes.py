"""Number formats: storage bits per value (block scales included) and the matmul dtype they run in.

Block-scaled formats are counted at their true size: MXFP4 stores 32 fp4 values with one shared
8-bit scale, 4 + 8/32 = 4.25 bits per value (OCP Microscaling Formats v1.0, 2023); NVFP4 stores 16
fp4 values with one fp8 scale, 4 + 8/16 = 4.5 bits (NVIDIA Blackwell; the per-tensor fp32 scale is
negligible). Group-quantized int4 carries one 16-bit scale per group (g128: 4.125 bits) or a
16-bit scale and zero point per group (gpt-fast's int4 g32: 4 + 32/32 = 5 bits), or, symmetric, a
scale alone (Kimi K2 Thinking and K2.5's W4A16 release: 4 + 16/32 = 4.5 bits).
"""
from .errors import RooflineError

#: dtype -> (bits per value including scales, compute class, description)
DTYPES = {
    "fp32": (32.0, "fp32", "IEEE float32"),
    "bf16": (16.0, "bf16", "bfloat16"),
    "fp16": (16.0, "fp16", "IEEE float16"),
    "fp8": (8.0, "fp8", "float8 (e4m3 / e5m2); per-block scales negligible"),
    "int8": (8.0, "int8", "8-bit integer, per-channel scales"),
    "fp6": (6.0, "fp6", "float6"),
    "int4": (4.0, "int4", "4-bit integer, scales not counted"),
    "int4-g128": (4.0 + 16 / 128, "int4", "4-bit integer, one fp16 scale per 128 values"),
    "int4-g32": (4.0 + 32 / 32, "int4", "4-bit integer, bf16 scale and zero per 32 values (gpt-fast)"),
    "int4-g32-sym": (4.0 + 16 / 32, "int4", "4-bit integer, symmetric, one bf16 scale per 32 values (Kimi K2.5)"),
    "fp4": (4.0, "fp4", "float4 e2m1, scales not counted"),
    "mxfp4": (4.0 + 8 / 32, "fp4", "OCP MXFP4: 32 e2m1 values share one 8-bit scale"),
    "nvfp4": (4.0 + 8 / 16, "fp4", "NVFP4: 16 e2m1 values share one fp8 scale"),
}

#: dtypes a chip can list a dense peak for
COMPUTE_DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8", "fp6", "fp4", "int8", "int4")

#: float formats that chips run natively as W8A8 / W4A4 when they support them
_NATIVE_LOW_PRECISION = ("fp8", "fp6", "fp4")

#: tried in order when a chip lacks the requested matmul dtype (same or wider precision)
_FALLBACK = {"bf16": ("fp16", "fp32"), "fp16": ("bf16", "fp32"), "fp32": ("tf32",),
             "fp8": ("bf16", "fp16"), "int8": ("bf16", "fp16"), "fp4": ("fp8", "bf16", "fp16"),
             "fp6": ("fp8", "bf16", "fp16"), "int4": ("int8", "bf16", "fp16"), "tf32": ("fp32",)}


class SizedDtype(str):
    """A dtype name whose bytes per value is given as an expression (a sympy symbol for `explain`).

    It compares and hashes as its name ('bf16'), so the matmul dtype and the peak that bound an
    operator stay the chip's; only `bytes_per_value` returns `size` instead of the table's figure.
    """

    def __new__(cls, name, size):
        obj = super().__new__(cls, check(name))
        obj.size = size
        return obj


def check(dtype, what="dtype"):
    """The dtype name if known, else RooflineError listing the known ones."""
    if dtype not in DTYPES:
        raise RooflineError(f"unknown {what} '{dtype}'; expected one of {', '.join(DTYPES)}")
    return dtype


def bytes_per_value(dtype):
    """Storage size of one value in bytes, block scales included: bits / 8 [B]."""
    if isinstance(dtype, SizedDtype):
        return dtype.size
    return DTYPES[check(dtype)][0] / 8


def compute_class(dtype):
    """The matmul dtype family of a storage dtype: mxfp4 -> fp4, int4-g128 -> int4."""
    return DTYPES[check(dtype)][1]


def matmul_dtype(weights, activations, peaks):
    """The dtype whose peak bounds a weight GEMM, given what the chip has (`peaks`: dtype -> FLOP/s).

    Float low-precision weights (fp8, fp6, fp4 and their block-scaled forms) run natively
    (W8A8 / W4A4) on chips that list that peak; integer and unsupported formats are weight-only
    quantization, dequantized into the activation dtype. Falls back to a supported dtype of the
    same or wider precision; RooflineError if there is none.
    """
    wanted = compute_class(weights)
    first = wanted if wanted in _NATIVE_LOW_PRECISION and wanted in peaks else compute_class(activations)
    for candidate in (first, *_FALLBACK.get(first, ())):
        if candidate in peaks:
            return candidate
    raise RooflineError(f"the chip has no peak for {first} or a fallback; it lists {', '.join(peaks)}")
