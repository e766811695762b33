"""Chip and link specs: memory tiers, dense peaks per dtype, links, power, price, calibration.

Loaded from hardware_specs/<id>.yaml and hardware_specs/links/<id>.yaml (format in
docs/spec-format.md); every number is converted to SI on load (bytes, B/s, FLOP/s, s, W, USD/s).
"""
from dataclasses import dataclass, field
from functools import lru_cache

from .calibration import Calibration, default_calibration
from .dtypes import COMPUTE_DTYPES
from .errors import RooflineError, SpecError
from .specs import FieldReader, check_id, load_yaml, read_sources, resolve

CHIP_KINDS = ("gpu", "tpu", "wafer", "lpu", "rdu", "soc", "accelerator")
TIERS = ("hbm", "dram", "sram")
LINK_KINDS = ("scale-up", "scale-out", "host", "chip-to-chip")
LINK_ROLES = ("scale-up", "scale-out", "host")


@dataclass(frozen=True)
class MemoryTier:
    name: str
    tier: str                 # hbm | dram | sram
    capacity: float           # [B]
    bandwidth: float = None   # [B/s]


@dataclass(frozen=True)
class Link:
    """A chip-to-chip link technology: per-direction bandwidth per chip and one-hop latency."""
    id: str
    name: str
    kind: str
    bandwidth: float          # [B/s] per direction, per chip
    latency: float            # [s] one hop, small message
    latency_is_assumption: bool
    facts: tuple = ()
    sources: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class ChipLink:
    link: Link
    role: str                 # scale-up | scale-out | host
    domain: int = None        # chips reachable over this link (NVLink domain), None = unbounded
    count: int = 1            # links of this kind per chip (bandwidth adds up)

    @property
    def bandwidth(self):
        """Per-direction bandwidth of the chip over this link kind [B/s]."""
        return self.link.bandwidth * self.count


@dataclass(frozen=True)
class Hardware:
    id: str
    name: str
    vendor: str
    kind: str
    memory: tuple             # of MemoryTier; memory[0] holds weights and KV cache
    peak_flops: dict          # dtype -> dense peak [FLOP/s]
    power: float = None       # [W]
    price: float = None       # [USD/s] per chip
    links: tuple = ()         # of ChipLink
    calibration: Calibration = None
    architecture: str = None  # `microarchitecture:` (hopper, cdna3, ...): what a calibration transfers within
    software: str = None      # software stack whose kernels a calibration measures (cuda, rocm, xla, ...)
    compute_units: int = None  # SMs / CUs, for scaling a power-limited FLOP rate (roofline.transfer)
    facts: tuple = ()
    sources: dict = field(default_factory=dict, compare=False)
    path: str = None

    @property
    def main_memory(self):
        return self.memory[0]

    @property
    def mem_capacity(self):
        """Capacity of the tier that holds weights and KV cache [B]."""
        return self.memory[0].capacity

    @property
    def mem_bandwidth(self):
        """Bandwidth of the tier that holds weights and KV cache [B/s]."""
        return self.memory[0].bandwidth

    def peak(self, dtype):
        """Dense peak FLOP/s for a compute dtype; RooflineError if the chip has none."""
        try:
            return self.peak_flops[dtype]
        except KeyError:
            raise RooflineError(f"{self.id} has no {dtype} peak in its spec; it has "
                                f"{', '.join(self.peak_flops)}") from None

    def link(self, role=None, link_id=None):
        """The chip's link of a role (scale-up first) or id; RooflineError if it has none."""
        for chip_link in self.links:
            if (link_id is None or chip_link.link.id == link_id) and (role is None or chip_link.role == role):
                return chip_link
        wanted = f"link '{link_id}'" if link_id else f"{role} link"
        have = ", ".join(f"{cl.link.id} ({cl.role})" for cl in self.links) or "none"
        raise RooflineError(f"{self.id} has no {wanted}; its links: {have}")

    def with_tier(self, name):
        """The same chip with memory tier `name` (or tier kind) moved first: weights live there."""
        for i, tier in enumerate(self.memory):
            if name in (tier.name, tier.tier):
                if tier.bandwidth is None:
                    raise RooflineError(f"{self.id}: memory tier '{tier.name}' has no bandwidth in its spec")
                memory = (tier,) + self.memory[:i] + self.memory[i + 1:]
                return _replace(self, memory=memory)
        raise RooflineError(f"{self.id} has no memory tier '{name}'; tiers: "
                            + ", ".join(f"{t.name} ({t.tier})" for t in self.memory))


def _replace(obj, **changes):
    from dataclasses import replace
    return replace(obj, **changes)


@lru_cache(maxsize=None)
def load_link(name):
    """Link spec by id or path."""
    path = resolve("link", name)
    data = load_yaml(path)
    reader = FieldReader(data, path, read_sources(data, path))
    reader.seen.add("sources")
    link_id = check_id(reader, path)
    entry = reader.raw("latency")
    is_assumption = isinstance(entry, dict) and entry.get("source") == "assumption"
    link = Link(
        id=link_id, name=reader.text("name"), kind=reader.text("kind", choices=LINK_KINDS),
        bandwidth=reader.quantity("bandwidth", "bandwidth"),
        latency=reader.quantity("latency", "time", allow_zero=True),
        latency_is_assumption=is_assumption, facts=tuple(reader.facts), sources=reader.sources)
    reader.finish()
    return link


@lru_cache(maxsize=None)
def load_hardware(name):
    """Hardware spec by id (hardware_specs/<id>.yaml) or path; SpecError/RooflineError if invalid."""
    path = resolve("hardware", name)
    data = load_yaml(path)
    reader = FieldReader(data, path, read_sources(data, path))
    reader.seen.add("sources")
    chip_id = check_id(reader, path)
    memory = []
    for tier in reader.items("memory"):
        memory.append(MemoryTier(
            name=tier.text("name"), tier=tier.text("tier", choices=TIERS),
            capacity=tier.quantity("capacity", "bytes"),
            bandwidth=tier.quantity("bandwidth", "bandwidth", required=(not memory))))
        tier.finish()
    flops_reader = reader.sub("peak_flops")
    peak_flops = {}
    for dtype in list(flops_reader.data):
        if dtype not in COMPUTE_DTYPES:
            flops_reader._fail(dtype, f"unknown dtype; expected one of {', '.join(COMPUTE_DTYPES)}")
        peak_flops[dtype] = flops_reader.quantity(dtype, "flops")
    if not peak_flops:
        raise SpecError(path, "peak_flops: expected at least one dtype")
    links = []
    for entry in reader.items("links", required=False):
        link_id = entry.text("link")
        try:
            link = load_link(link_id)
        except RooflineError as exc:
            raise SpecError(path, f"{entry.prefix}link: {exc}") from None
        links.append(ChipLink(link=link, role=entry.text("role", choices=LINK_ROLES),
                              domain=entry.count("domain", required=False),
                              count=entry.count("count", required=False, default=1)))
        entry.finish()
    hardware = Hardware(
        id=chip_id, name=reader.text("name"), vendor=reader.text("vendor"),
        kind=reader.text("kind", choices=CHIP_KINDS), memory=tuple(memory), peak_flops=peak_flops,
        architecture=reader.text("microarchitecture", required=False), software=reader.text("software", required=False),
        compute_units=reader.count("compute_units", required=False),
        power=reader.quantity("power", "power", required=False),
        price=reader.quantity("price", "price", required=False),
        links=tuple(links), path=str(path), sources=reader.sources)
    for moved in ("achieved", "calibration"):
        if moved in data:
            reader._fail(moved, f"calibrations live in their own file now: hardware_specs/calibrations/{chip_id}.yaml "
                                "(docs/spec-format.md, 'Calibration')")
    reader.finish()
    hardware = _replace(hardware, facts=tuple(reader.facts))
    return _replace(hardware, calibration=default_calibration(hardware))
