"""The speed of water-borne leak noise in a pipe, and the position it implies.

Leak noise travels along a buried main mostly in the water, at the Korteweg/Lamb speed of
a fluid in an elastic tube (Korteweg 1878; Lamb 1898; used for leak correlation by Gao,
Brennan, Joseph et al., J. Sound Vib. 2004–2006)::

    c = c_w / sqrt(1 + K * D / (E * h))

with the speed of sound in water ``c_w`` (1,480 m/s), the water's bulk modulus ``K``
(2.2 GPa), the pipe's internal diameter ``D``, wall thickness ``h`` and Young's modulus
``E``. Metal mains give about 1,100–1,400 m/s, plastic ones 300–500 m/s: not the 3,500–
5,000 m/s of sound in the pipe wall, which place a leak tens of metres off on a 200 m span.

Two sensors ``D_span`` metres apart hear the leak with a delay ``tau = t_A - t_B`` (positive
when the sound reaches A later); the leak lies at ``x = (D_span + c * tau) / 2`` from A.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError

WATER_SPEED = 1480.0  # m/s, sound in water at about 20 °C
WATER_BULK_MODULUS = 2.2e9  # Pa
MAX_BORE_MM = 5000.0  # the largest water mains are about 4 m across: more is a unit slip


@dataclass(frozen=True)
class Material:
    """A pipe material: Young's modulus (GPa) as typically used, the range met in practice
    (what the wave-speed interval spans), where the value comes from, and the internal
    diameter and wall (mm) of a typical distribution main of it."""

    name: str
    youngs_gpa: float
    youngs_range_gpa: tuple[float, float]
    source: str
    diameter_mm: float
    wall_mm: float


MATERIALS: dict[str, Material] = {m.name: m for m in (
    Material("ductile iron", 170.0, (160.0, 175.0),
             "EN 545 / ISO 2531 design value for ductile iron pipe", 150.0, 6.0),
    Material("cast iron", 100.0, (80.0, 120.0),
             "grey cast iron, ASM Handbook vol. 1 (depends on the graphite)", 150.0, 11.0),
    Material("steel", 207.0, (195.0, 210.0),
             "AWWA M11, Steel Pipe (30,000,000 psi)", 150.0, 7.0),
    Material("copper", 117.0, (110.0, 130.0),
             "ASTM B88 copper water tube (C12200)", 20.0, 1.0),
    Material("asbestos cement", 24.0, (20.0, 32.0),
             "AWWA C400 asbestos-cement pressure pipe, manufacturers' values", 150.0, 15.0),
    Material("pvc", 3.0, (2.4, 3.5),
             "ISO 1452 / AWWA C900 PVC-U, short-term modulus", 144.6, 7.7),
    Material("pe", 2.0, (1.0, 2.5),
             "MDPE at acoustic frequencies, Gao et al., J. Sound Vib. 2004 (static "
             "short-term modulus of PE100: about 1.0 GPa)", 130.8, 14.6),
)}
ALIASES = {"di": "ductile iron", "ci": "cast iron", "ac": "asbestos cement",
           "hdpe": "pe", "mdpe": "pe", "polyethylene": "pe", "pvcu": "pvc", "upvc": "pvc"}


def material(name: str) -> Material:
    """The material called ``name`` (any case; ``_`` and ``-`` read as spaces; common
    abbreviations: DI, CI, AC, HDPE, MDPE, uPVC); :class:`ConfigError` naming the known
    ones otherwise."""
    key = " ".join(name.lower().replace("_", " ").replace("-", " ").split())
    key = ALIASES.get(key, ALIASES.get(key.replace(" ", ""), key))
    if key not in MATERIALS:
        raise ConfigError(f"unknown pipe material {name!r}; known: {', '.join(MATERIALS)}")
    return MATERIALS[key]


def korteweg(youngs_gpa: float, diameter_mm: float, wall_mm: float) -> float:
    """Water-borne wave speed (m/s) in a pipe of Young's modulus ``youngs_gpa``, internal
    diameter ``diameter_mm`` and wall ``wall_mm``."""
    if not all(v > 0 for v in (youngs_gpa, diameter_mm, wall_mm)):  # (NaN fails too)
        raise ConfigError("Young's modulus, diameter and wall must be positive")
    if diameter_mm > MAX_BORE_MM:
        raise ConfigError(f"a bore of {diameter_mm:g} mm is larger than any water main: the "
                          f"diameter is in millimetres")
    if 2 * wall_mm >= diameter_mm:
        raise ConfigError(f"a wall of {wall_mm:g} mm is at least half the bore "
                          f"({diameter_mm:g} mm): the diameter is the internal one")
    stiffness = WATER_BULK_MODULUS * diameter_mm / (youngs_gpa * 1e9 * wall_mm)
    return WATER_SPEED / math.sqrt(1.0 + stiffness)


@dataclass(frozen=True)
class WaveSpeed:
    """A wave speed (m/s), the range it may lie in, and where it came from."""

    speed: float
    low: float
    high: float
    source: str


def for_material(name: str, diameter_mm: float | None = None,
                 wall_mm: float | None = None) -> WaveSpeed:
    """The Korteweg speed of a material's pipe (its typical diameter and wall unless
    given), with the range its Young's modulus spans."""
    m = material(name)
    d = m.diameter_mm if diameter_mm is None else diameter_mm
    h = m.wall_mm if wall_mm is None else wall_mm
    lo_e, hi_e = m.youngs_range_gpa
    return WaveSpeed(korteweg(m.youngs_gpa, d, h), korteweg(lo_e, d, h), korteweg(hi_e, d, h),
                     f"{m.name}, {d:g} mm bore, {h:g} mm wall, E = {m.youngs_gpa:g} GPa "
                     f"({m.source}): Korteweg")


def position(delay_s: float, distance_m: float, speed_m_s: float) -> float:
    """Metres from sensor A of a source heard ``delay_s`` later at A than at B (negative:
    earlier) on a span of ``distance_m`` at ``speed_m_s``. Outside [0, distance] when the
    source lies beyond a sensor."""
    check_distance(distance_m)
    return (distance_m + speed_m_s * delay_s) / 2.0


def check_distance(distance_m: float) -> None:
    """:class:`ConfigError` unless ``distance_m`` is a positive, finite number of metres."""
    if not math.isfinite(distance_m):
        raise ConfigError(f"the distance between the sensors must be a number of metres, "
                          f"not {distance_m:g}")
    if distance_m <= 0:
        raise ConfigError(f"the distance between the sensors must be positive, not "
                          f"{distance_m:g} m")


def speed_from_known_source(delay_s: float, distance_m: float, source_m: float) -> float:
    """The wave speed (m/s) that puts a source known to lie ``source_m`` metres from A (a
    hydrant opened there) where the measured ``delay_s`` says: ``(2 x - D) / tau``.
    :class:`ConfigError` when the source is at mid-span or outside it, or when the delay's
    sign disagrees with the side the source is on."""
    check_distance(distance_m)
    if not 0.0 <= source_m <= distance_m:
        raise ConfigError(f"the known source ({source_m:g} m from A) must lie between the "
                          f"sensors (0 to {distance_m:g} m)")
    offset = 2.0 * source_m - distance_m
    if abs(offset) < 1e-9 * distance_m:
        raise ConfigError("a source at mid-span reaches both sensors at once and says "
                          "nothing of the speed; open one nearer a sensor")
    speed = offset / delay_s if delay_s else math.inf
    if not math.isfinite(speed) or speed <= 0:
        raise ConfigError(f"a delay of {delay_s * 1e3:+.3f} ms does not fit a source "
                          f"{source_m:g} m from A (it should reach "
                          f"{'A' if offset < 0 else 'B'} first)")
    return speed
