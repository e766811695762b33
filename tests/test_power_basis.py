"""Energy on one basis for every chip (issue 14, item 9): the accelerator's share of its reference
system's maximum input power, host and network included; where a spec has no such figure the
output says 'unknown' in the cost rows instead of leaving them out or using a chip TDP.

Reference figures from the vendors' system guides: DGX A100 6.5 kW, DGX H100/H200 10.2 kW, DGX B200
14.3 kW, DGX B300 14.5 kW (8 GPUs each), GB200 and GB300 NVL72 about 120 kW (72 GPUs), an Ironwood
superpod about 10 MW (9216 chips), a Mac Studio with M2 Ultra 295 W at the wall, one CS-3 23 kW a wafer.
A chip without such a figure says why in its spec file, on a comment line
`# system_power: unknown: REASON` (the same for `# price: unknown: REASON`).
"""
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import roofline
from roofline.cli import cli
from roofline import cost

SPECS = Path(__file__).resolve().parent.parent / "hardware_specs"

# The published system figure over the accelerators it holds; rel=2e-3 covers the rounding of the spec values
# (1667 W for 120 kW / 72 = 1666.7 W, 1085 W for 10 MW / 9216 = 1085.1 W).
SYSTEM_SHARE = {"a100-sxm": 6.5e3 / 8, "h100-sxm": 10.2e3 / 8, "h200": 10.2e3 / 8, "b200": 14.3e3 / 8,
                "b300": 14.5e3 / 8, "gb200": 120e3 / 72, "gb300": 120e3 / 72, "tpu-v7": 10e6 / 9216,
                "m2-ultra": 295.0, "wse-3": 23e3, "wse-2": 23e3}
# On-demand list prices per accelerator-hour at a hyperscaler [USD/hour]
PRICED = {"a100-sxm": 2.25, "h100-sxm": 4.25, "h200": 5.75, "b200": 113.9328 / 8, "tpu-v5e": 1.20, "tpu-v5p": 4.0,
          "tpu-v6e": 2.70, "tpu-v7": 12.0}


def spec_text(chip):
    return (SPECS / f"{chip}.yaml").read_text(encoding="utf-8")


def unknown_reason(chip, field):
    """The reason a spec gives on its `# FIELD: unknown: REASON` comment (continued on `#   ` lines), or None."""
    match = re.search(rf"^# {field}: unknown: (.+(?:\n#   .+)*)", spec_text(chip), re.MULTILINE)
    return " ".join(line.lstrip("# ") for line in match.group(1).splitlines()) if match else None


def run(*args):
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("chip, watts", SYSTEM_SHARE.items())
def test_system_share_is_the_reference_system_over_its_accelerators(chip, watts):
    hardware = roofline.load_hardware(chip)
    assert hardware.system_power == pytest.approx(watts, rel=2e-3)
    # a system share is never below the chip's own board power (the host and network come on top)
    assert hardware.power is None or hardware.system_power >= hardware.power


def test_every_shipped_chip_carries_a_sourced_figure_on_the_basis_or_says_why_not():
    """Each chip either has the field, with a source and how it was derived (system power) or a dated
    hyperscaler basis (price), or a comment line saying why no figure on the basis exists."""
    import yaml

    chips = sorted(path.stem for path in SPECS.glob("*.yaml"))
    assert len(chips) == 24                     # the 22 of issue 2, B300 and GB300 (issue 11)
    for chip in chips:
        data = yaml.safe_load(spec_text(chip))
        hardware = roofline.load_hardware(chip)
        for field in ("system_power", "price"):
            entry, reason = data.get(field), unknown_reason(chip, field)
            assert (entry is None) != (reason is None), f"{chip}: {field} needs a figure or a reason, not both"
            if entry is None:
                # a reason, and the option that supplies the figure
                assert len(reason) > 40 and ("--power" if field == "system_power" else "--price") in reason, chip
                continue
            assert entry["source"] in data["sources"], (chip, field)
            if field == "system_power":
                assert entry.get("derived"), chip          # system maximum / accelerators it holds
            else:
                assert "hyperscaler" in entry["note"], chip
                assert any(year in entry.get("derived", "") + entry["note"] for year in ("2025", "2026")), chip
    with_power = {chip for chip in chips if roofline.load_hardware(chip).system_power is not None}
    assert with_power == set(SYSTEM_SHARE)
    assert {chip for chip in chips if roofline.load_hardware(chip).price is not None} == set(PRICED)


def test_a_chip_without_a_system_share_reports_unknown_joules():
    for chip in sorted(path.stem for path in SPECS.glob("*.yaml")):
        hardware = roofline.load_hardware(chip)
        fields, notes = cost.pricing(hardware).fields(100.0)      # 100 tokens/s on one chip
        if hardware.system_power is None:
            assert fields["joules_per_token"] is None
            assert any(f"unknown: {chip} has no system power" in n for n in notes), chip
        else:
            assert fields["joules_per_token"] == pytest.approx(hardware.system_power / 100.0)


def test_decode_table_keeps_the_cost_rows_when_figures_are_unknown():
    text = run("decode", "-m", "llama-3.1-8b", "-c", "gaudi3")
    assert "per million tokens" in text and "unknown (no price in the chip spec; --price)" in text
    assert "energy per token" in text and "unknown (no system power in the chip spec; --power)" in text
    data = json.loads(run("decode", "-m", "llama-3.1-8b", "-c", "gaudi3", "--format", "json"))
    assert data["usd_per_mtok"] is None and data["joules_per_token"] is None
    assert any("unknown" in n and "--power" in n for n in data["notes"])


def test_compare_says_unknown_in_the_column():
    text = run("compare", "-m", "llama-3.1-8b", "-c", "gaudi3", "-c", "h100-sxm")
    gaudi = next(line for line in text.splitlines() if line.startswith("gaudi3"))
    assert gaudi.split()[-2:] == ["unknown", "unknown"]
    data = json.loads(run("compare", "-m", "llama-3.1-8b", "-c", "gaudi3", "-c", "h100-sxm", "--format", "json"))
    assert data[0]["joules_per_token"] is None          # programs get null, people read 'unknown'


def test_a_given_power_replaces_the_unknown():
    r = roofline.decode("llama-3.1-8b", "gaudi3", power="1.2 kW")
    assert r.joules_per_token == pytest.approx(1200 / r.tokens_per_s)


@pytest.mark.parametrize("chip, usd_per_hour", PRICED.items())
def test_every_shipped_price_is_a_hyperscaler_on_demand_list_price(chip, usd_per_hour):
    """One basis for price: a hyperscaler's (AWS, Google Cloud, Azure) on-demand list price per
    accelerator-hour, dated; specialty-cloud and marketplace figures stay out (they were 2-3x lower
    for the same GPU, which made an H200 look 2.5x an H100)."""
    assert roofline.load_hardware(chip).price == pytest.approx(usd_per_hour / cost.HOUR, rel=1e-3)


def test_prices_of_one_class_keep_the_generations_in_order():
    price = {chip: roofline.load_hardware(chip).price for chip in PRICED}
    assert 1 < price["h200"] / price["h100-sxm"] < 1.5      # the same class of provider: H200 a little above H100
    # B200 is one hyperscaler's list (AWS), not a range midpoint (the spec says so): 2.5x the H200 midpoint, where
    # AWS's own lists differ by 1.8x (p6-b200 113.93 / p5en 63.30 USD/hour, both 8 GPUs), so below 3x
    assert price["h200"] < price["b200"] < 3 * price["h200"]
    assert price["tpu-v5e"] < price["tpu-v6e"] < price["tpu-v5p"] < price["tpu-v7"]   # Google's list, one sheet
    text = run("decode", "-m", "llama-3.1-8b", "-c", "mi300x")
    assert "unknown (no price in the chip spec; --price)" in text


def test_gaudi3_scale_up_counts_the_21_ports_that_reach_the_seven_peers():
    """Intel Gaudi docs, Network Configuration: 21 of the 24 x 200 GbE ports are scale-up, 3 to each of the 7
    peers of an HLS-3 box; 21 x 200 Gb/s = 525 GB/s per direction (the other 3 ports are scale-out)."""
    from roofline.hardware import load_link

    link = load_link("gaudi3-roce")
    assert link.bandwidth == pytest.approx(21 * 200e9 / 8)
    assert link.bandwidth / 7 == pytest.approx(3 * 200e9 / 8)        # a point-to-point link to each peer
    domain = next(l.domain for l in roofline.load_hardware("gaudi3").links if l.role == "scale-up")
    assert domain == 8
