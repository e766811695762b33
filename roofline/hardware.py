"""Chip and link specs: memory tiers, dense peaks per dtype, links, power, price, calibration.

Loaded from hardware_specs/<id>.yaml and hardware_specs/links/<id>.yaml (format in
docs/spec-format.md); every number is converted to SI on load (bytes, B/s, FLOP/s, s, W, USD/s).
"""
from dataclasses import dataclass, field
from functools import lru_cache

from .calibration import Calibration, default_calibration
from .dtypes import COMPUTE_DTYPES
from .errors import RooflineError, SpecError
from .specs import check_id, file_reader, load_yaml, resolve, spec_paths

CHIP_KINDS = ("gpu", "tpu", "wafer", "lpu", "rdu", "soc", "accelerator")
TIERS = ("hbm", "dram", "sram")
LINK_KINDS = ("scale-up", "scale-out", "host", "chip-to-chip")
LINK_ROLES = ("scale-up", "scale-out", "host")
FABRICS = ("switched", "point-to-point", "torus")


@dataclass(frozen=True)
class MemoryTier:
    name: str
    tier: str                 # hbm | dram | sram
    capacity: float           # [B]
    bandwidth: float = None   # [B/s]


@dataclass(frozen=True)
class Link:
    """A chip-to-chip link technology: per-direction bandwidth per chip, one-hop latency, fabric.

    fabric: 'switched' (every chip reaches every other through one switch crossing at its full
    bandwidth: NVSwitch, InfiniBand, Ethernet, PCIe), 'point-to-point' (a full mesh: one dedicated
    link to each peer of the domain: AMD Infinity Fabric, Gaudi 3 RoCE, Groq C2C) or 'torus'
    (neighbours only, `dimensions` axes: TPU ICI). roofline.collectives prices each.
    """
    id: str
    name: str
    kind: str
    bandwidth: float          # [B/s] per direction, per chip
    latency: float            # [s] one hop, small message
    latency_is_assumption: bool
    fabric: str = "switched"
    dimensions: int = 1       # torus axes (2 for a 2D torus); 1 otherwise
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
    power: float = None       # [W] the chip's TDP / board power (the transfer's power limit)
    system_power: float = None  # [W] its share of its reference system's maximum input power: the J/token basis
    price: float = None       # [USD/s] per chip
    links: tuple = ()         # of ChipLink
    aliases: tuple = ()       # common system names (h100_sxm, gb300) that also find this spec
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
    reader = file_reader(data, path)
    link_id = check_id(reader, path)
    entry = reader.raw("latency")
    is_assumption = isinstance(entry, dict) and entry.get("source") == "assumption"
    link = Link(
        id=link_id, name=reader.text("name"), kind=reader.text("kind", choices=LINK_KINDS),
        bandwidth=reader.quantity("bandwidth", "bandwidth"),
        latency=reader.quantity("latency", "time", allow_zero=True),
        latency_is_assumption=is_assumption, fabric=reader.text("fabric", required=False, default="switched",
                                                                 choices=FABRICS),
        dimensions=reader.count("dimensions", required=False, default=1), sources=reader.sources)
    if link.fabric == "torus" and "dimensions" not in data:
        reader._fail("dimensions", "a torus link needs its number of axes (2 for a 2D torus, 3 for a 3D one)")
    link = _replace(link, facts=tuple(reader.facts))
    reader.finish()
    return link


def load_hardware(name, overrides=None):
    """Hardware spec by id (hardware_specs/<id>.yaml), alias (`h100_sxm`) or path; SpecError/RooflineError
    if invalid.

    `overrides` {field: text with unit} changes fields for a what-if (see with_overrides).
    """
    try:
        hardware = _load_hardware(str(name))
    except RooflineError:
        alias = chip_aliases().get(str(name))
        if alias is None:
            raise
        hardware = _load_hardware(alias)
    return with_overrides(hardware, overrides) if overrides else hardware


def chip_aliases():
    """{alias: chip id} from the `aliases:` of every chip spec (common system names, e.g. h100_sxm)."""
    found = {}
    for chip_id, path in spec_paths("hardware").items():
        aliases = load_yaml(path).get("aliases")
        for alias in aliases if isinstance(aliases, list) else ():
            found[str(alias)] = chip_id
    return found


#: chip fields a what-if may change (`--set hardware.FIELD=VALUE`), with the dimension each must have;
#: `peak_flops.<dtype>` [FLOP/s] as well
OVERRIDABLE = {"memory_bandwidth": "bandwidth", "memory_capacity": "bytes", "power": "power",
               "system_power": "power", "price": "price"}
#: prefixes of --set fields that address the chip rather than the model
HARDWARE_PREFIXES = ("hardware.", "chip.")


def split_overrides(overrides):
    """({model field: text}, {chip field: text}) from --set pairs: `hardware.X` and `chip.X` address the
    chip, `model.X` and bare fields the model."""
    model, chip = {}, {}
    for key, text in (overrides or {}).items():
        for prefix in HARDWARE_PREFIXES:
            if key.startswith(prefix):
                chip[key[len(prefix):]] = text
                break
        else:
            model[key[len("model."):] if key.startswith("model.") else key] = text
    return model, chip


def chip_with_overrides(hardware, overrides, memory_tier=None):
    """(chip, memory tier left to choose) for a question with chip what-ifs: `hardware` (id, file or
    Hardware) with `memory_tier` moved first, so that memory_* fields address the tier that holds
    the weights, and `overrides` applied (with_overrides). Without overrides: unchanged."""
    if not overrides:
        return hardware, memory_tier
    chip = hardware if isinstance(hardware, Hardware) else load_hardware(hardware)
    chip = chip.with_tier(memory_tier) if memory_tier else chip
    return with_overrides(chip, overrides), None


def with_overrides(hardware, overrides):
    """The chip with fields changed for a what-if: {field: "6 TB/s"}; each value is checked for its
    dimension (OVERRIDABLE; `peak_flops.<dtype>` in FLOP/s) and must be greater than zero.

    memory_bandwidth and memory_capacity change the tier that holds the weights (memory[0]). A
    calibration keeps its achieved share of each peak: its bandwidth and measured FLOP rates scale
    with the new datasheet figures (the same software efficiency on a faster part), which is what
    a what-if on a faster chip means; ideal mode uses the new peaks directly.
    """
    from dataclasses import replace
    from .specs import Fact, near_ids
    from .units import to_si
    memory, peaks = list(hardware.memory), dict(hardware.peak_flops)
    changes, facts = {}, []
    for key, text in overrides.items():
        if key.startswith("peak_flops."):
            dtype, dimension = key.split(".", 1)[1], "flops"
            if dtype not in COMPUTE_DTYPES:
                raise RooflineError(f"--set hardware.{key}: unknown dtype '{dtype}'; expected one of "
                                    f"{', '.join(COMPUTE_DTYPES)}")
        elif key in OVERRIDABLE:
            dimension = OVERRIDABLE[key]
        else:
            fields = list(OVERRIDABLE) + [f"peak_flops.{d}" for d in hardware.peak_flops]
            near = near_ids(key, fields, n=1)
            hint = f"did you mean hardware.{near[0]}? " if near else ""
            raise RooflineError(f"--set hardware.{key}: not a chip field a what-if can change; {hint}fields: "
                                + ", ".join(f"hardware.{f}" for f in fields))
        value = to_si(text, dimension, where=f"--set hardware.{key}")
        if value <= 0:
            raise RooflineError(f"--set hardware.{key}: {text!r} must be greater than zero")
        if key == "memory_bandwidth":
            memory[0] = replace(memory[0], bandwidth=value)
        elif key == "memory_capacity":
            memory[0] = replace(memory[0], capacity=value)
        elif key.startswith("peak_flops."):
            peaks[key.split(".", 1)[1]] = value
        else:
            changes[key] = value
        facts.append(Fact(key, value, str(text), "--set on the command line (what-if)", "--set",
                          note="what-if override"))
    changed = replace(hardware, memory=tuple(memory), peak_flops=peaks, facts=tuple(
        f for f in hardware.facts if f.field not in _fact_fields(overrides)) + tuple(facts), **changes)
    if hardware.calibration is not None:
        changed = replace(changed, calibration=_scaled_calibration(hardware, changed))
    return changed


def _fact_fields(overrides):
    names = {"memory_bandwidth": "memory[0].bandwidth", "memory_capacity": "memory[0].capacity"}
    return {names.get(key, key) for key in overrides}


def _scaled_calibration(old, new):
    """The calibration of `old` on chip `new`: achieved bandwidth and FLOP rates scaled by the ratios of
    the datasheet figures (unchanged where the figures are)."""
    from dataclasses import replace
    cal = old.calibration
    bandwidth = cal.bandwidth * new.mem_bandwidth / old.mem_bandwidth
    flops = {dtype: rate * new.peak_flops[dtype] / old.peak_flops[dtype] if dtype in old.peak_flops else rate
             for dtype, rate in cal.flops.items()}
    return replace(cal, bandwidth=bandwidth, flops=flops)


@lru_cache(maxsize=None)
def _load_hardware(name):
    return read_hardware(name)


load_hardware.cache_clear = _load_hardware.cache_clear  # forget loaded chips (a test that adds a user spec)


def read_hardware(name):
    """The chip spec `name` read from its file now, bypassing load_hardware's cache."""
    path = resolve("hardware", name)
    data = load_yaml(path)
    reader = file_reader(data, path)
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
        system_power=reader.quantity("system_power", "power", required=False),
        price=reader.quantity("price", "price", required=False),
        links=tuple(links), aliases=reader.texts("aliases"), path=str(path), sources=reader.sources)
    for moved in ("achieved", "calibration"):
        if moved in data:
            reader._fail(moved, f"calibrations live in their own file now: hardware_specs/calibrations/{chip_id}.yaml "
                                "(docs/spec-format.md, 'Calibration')")
    reader.finish()
    hardware = _replace(hardware, facts=tuple(reader.facts))
    return _replace(hardware, calibration=default_calibration(hardware))
