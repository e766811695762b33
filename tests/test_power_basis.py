"""Energy on one basis for every chip (issue 14, item 9): the accelerator's share of its reference
system's maximum input power, host and network included; where a spec has no such figure the
output says 'unknown' in the cost rows instead of leaving them out or using a chip TDP.

Reference figures from the vendors' system guides: DGX A100 6.5 kW, DGX H100/H200 10.2 kW, DGX B200
14.3 kW (8 GPUs each), GB200 NVL72 about 120 kW (72 GPUs), one CS-3 23 kW a wafer.
"""
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import roofline
from roofline.cli import cli
from roofline import cost

SPECS = Path(__file__).resolve().parent.parent / "hardware_specs"

SYSTEM_SHARE = {"a100-sxm": 6.5e3 / 8, "h100-sxm": 10.2e3 / 8, "h200": 10.2e3 / 8, "b200": 14.3e3 / 8,
                "gb200": 120e3 / 72, "wse-3": 23e3, "wse-2": 23e3}


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


def test_every_shipped_chip_has_a_system_share_or_says_unknown():
    chips = sorted(path.stem for path in SPECS.glob("*.yaml"))
    assert len(chips) == 24                     # the 22 of issue 2, B300 and GB300 (issue 11)
    for chip in chips:
        hardware = roofline.load_hardware(chip)
        fields, notes = cost.pricing(hardware).fields(100.0)      # 100 tokens/s on one chip
        if hardware.system_power is None:
            assert fields["joules_per_token"] is None
            assert any(f"unknown: {chip} has no system power" in n for n in notes), chip
        else:
            assert fields["joules_per_token"] == pytest.approx(hardware.system_power / 100.0)


def test_decode_table_keeps_the_cost_rows_when_figures_are_unknown():
    text = run("decode", "-m", "llama-3.1-8b", "-c", "tpu-v5e")
    assert "per million tokens" in text and "unknown (no price in the chip spec; --price)" in text
    assert "energy per token" in text and "unknown (no system power in the chip spec; --power)" in text
    data = json.loads(run("decode", "-m", "llama-3.1-8b", "-c", "tpu-v5e", "--format", "json"))
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


def test_every_shipped_price_is_a_hyperscaler_on_demand_list_price():
    """One basis for price: a hyperscaler's (AWS, Google Cloud, Azure) on-demand list price per
    accelerator-hour, dated; specialty-cloud and marketplace figures stay out (they were 2-3x lower
    for the same GPU, which made an H200 look 2.5x an H100)."""
    import yaml

    priced = {}
    for path in sorted(SPECS.glob("*.yaml")):
        entry = yaml.safe_load(path.read_text()).get("price")
        if entry is not None:
            priced[path.stem] = entry
            assert "hyperscaler" in entry["note"], path.stem
            assert any(year in entry.get("derived", "") + entry["note"] for year in ("2025", "2026")), path.stem
    assert set(priced) == {"a100-sxm", "h100-sxm", "h200", "tpu-v5p", "tpu-v6e", "tpu-v7"}
    h100, h200 = roofline.load_hardware("h100-sxm").price, roofline.load_hardware("h200").price
    assert 1 < h200 / h100 < 1.5          # the same class of provider: H200 a little above H100
    text = run("decode", "-m", "llama-3.1-8b", "-c", "b200")
    assert "unknown (no price in the chip spec; --price)" in text
