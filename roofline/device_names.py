"""Device names as torch or a publication writes them ('NVIDIA H100 80GB HBM3', 'A100-SXM4-80GB')
matched to chip specs: which measured rows belong to which chip."""
import re

from .specs import spec_paths


_FORM_FACTORS = ("pcie", "sxm", "nvl")


def _has_form(tokens, form):
    """'sxm4' is an SXM part; 'nvl' (H100 NVL) is a form factor, 'nvl72' (a rack) is not."""
    return any(t == form or (form != "nvl" and t.startswith(form)) for t in tokens)


def _tokens(name):
    return [t for t in re.split(r"[^a-z0-9]+", name.lower()) if t]


def device_matches(device, hardware):
    """True if a device name (as torch or a publication writes it) names the chip `hardware`.

    Rule: every token of the chip id but its form factor (h100-sxm -> h100; rtx-4090 -> rtx, 4090)
    is a token of the device name; the form factors agree (a 'pcie' id needs 'pcie' in the name,
    any other id needs its absence; 'nvl' parts match no id without it); and a memory size written
    in the name ('80GB') is within 10% of the chip's capacity. 'NVIDIA H100 80GB HBM3' names
    h100-sxm; 'NVIDIA A100-SXM4-40GB' does not name a100-sxm (80 GB); 'cpu' names no chip.
    """
    words = _tokens(device)
    words += [a + b for a, b in zip(words, words[1:])]          # 'Gaudi 3' also reads as gaudi3
    chip = _tokens(hardware.id)
    core = [t for t in chip if not t.startswith(_FORM_FACTORS)]
    if not core or any(t not in words for t in core):
        return False
    for form in _FORM_FACTORS:
        if _has_form(words, form) != _has_form(chip, form) and (form != "sxm" or _has_form(words, "pcie")):
            return False
    sizes = [float(m.group(1)) * 1e9 for t in words if (m := re.fullmatch(r"(\d+)gb", t))]
    return all(abs(size / hardware.mem_capacity - 1) <= 0.10 for size in sizes)


def chip_for_device(device):
    """The id of the one chip spec whose name rule matches `device`, or None (none or several)."""
    from .hardware import load_hardware
    matches = [chip for chip in spec_paths("hardware") if device_matches(device, load_hardware(chip))]
    return matches[0] if len(matches) == 1 else None
