"""Wave speed and position (locate/wave_speed.py) against values computed by hand."""

from __future__ import annotations

import math

import pytest

from leakhunter.errors import ConfigError
from leakhunter.locate import wave_speed as ws


def test_korteweg_against_hand_computed_values() -> None:
    # ductile iron, 150 mm bore, 6 mm wall: 2.2e9 * 150 / (170e9 * 6) = 0.32353
    assert ws.korteweg(170.0, 150.0, 6.0) == pytest.approx(1480 / math.sqrt(1.32353), rel=1e-5)
    assert ws.korteweg(170.0, 150.0, 6.0) == pytest.approx(1286.5, abs=0.1)
    # PVC, 144.6 mm bore, 7.7 mm wall: 2.2 * 144.6 / (3.0 * 7.7) = 13.771
    assert ws.korteweg(3.0, 144.6, 7.7) == pytest.approx(1480 / math.sqrt(1 + 318.12 / 23.1))
    assert ws.korteweg(3.0, 144.6, 7.7) == pytest.approx(385.08, abs=0.01)
    # a rigid pipe carries sound at the speed of sound in water
    assert ws.korteweg(1e9, 150.0, 6.0) == pytest.approx(ws.WATER_SPEED, rel=1e-6)
    for bad in ((0.0, 150.0, 6.0), (170.0, float("nan"), 6.0)):
        with pytest.raises(ConfigError, match="must be positive"):
            ws.korteweg(*bad)
    # sizes no pipe has: a wall as thick as the radius, a bore given in the wrong unit
    with pytest.raises(ConfigError, match="a wall of 50 mm is at least half the bore"):
        ws.korteweg(2.0, 100.0, 50.0)
    with pytest.raises(ConfigError, match="bore of 130800 mm is larger than any water main"):
        ws.korteweg(2.0, 130800.0, 14.6)


def test_every_material_is_water_borne_not_wall_speed() -> None:
    for name in ws.MATERIALS:
        speed = ws.for_material(name)
        assert speed.low <= speed.speed <= speed.high
        plastic = name in ("pvc", "pe")
        # metal and cement mains 1,000-1,400 m/s, plastic 300-500 m/s (never the 3,500-
        # 5,000 m/s of the wall)
        assert (300 <= speed.speed <= 500) if plastic else (1000 <= speed.speed <= 1400)
        assert name in speed.source and "Korteweg" in speed.source


def test_material_names_and_overrides() -> None:
    assert ws.material("Ductile_Iron").name == "ductile iron"
    assert ws.material("HDPE").name == "pe" and ws.material("uPVC").name == "pvc"
    assert ws.material("PVC-U").name == "pvc"
    assert ws.material(" asbestos-cement ").name == "asbestos cement"
    with pytest.raises(ConfigError, match="unknown pipe material 'clay'; known: ductile"):
        ws.material("clay")
    thin = ws.for_material("pe", diameter_mm=130.8, wall_mm=7.3)  # a thinner wall: slower
    assert thin.speed < ws.for_material("pe").speed
    assert "7.3 mm wall" in thin.source


def test_position_sign_convention() -> None:
    # a leak 50 m from A on a 200 m span at 1,250 m/s: A hears it 100 m / c earlier
    c, d, x = 1250.0, 200.0, 50.0
    tau = (x / c) - ((d - x) / c)  # t_A - t_B < 0: nearer A
    assert tau < 0 and ws.position(tau, d, c) == pytest.approx(x)
    assert ws.position(0.0, d, c) == d / 2
    assert ws.position(-d / c, d, c) == pytest.approx(0.0)  # at A
    assert ws.position(-1.2 * d / c, d, c) < 0  # beyond A
    with pytest.raises(ConfigError, match="distance between the sensors must be positive"):
        ws.position(0.0, 0.0, c)
    for distance in (float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="must be a number of metres"):
            ws.position(0.0, distance, c)


def test_speed_from_a_known_source_inverts_the_position() -> None:
    c, d = 420.0, 90.0
    for x in (10.0, 30.0, 70.0, 90.0):
        tau = (2 * x - d) / c
        assert ws.speed_from_known_source(tau, d, x) == pytest.approx(c)
        assert ws.position(tau, d, ws.speed_from_known_source(tau, d, x)) == pytest.approx(x)
    with pytest.raises(ConfigError, match="mid-span"):
        ws.speed_from_known_source(0.01, d, d / 2)
    with pytest.raises(ConfigError, match="should reach A first"):
        ws.speed_from_known_source(+0.05, d, 10.0)  # near A, yet A heard it later
    with pytest.raises(ConfigError, match="must lie between the sensors"):
        ws.speed_from_known_source(0.05, d, 120.0)
