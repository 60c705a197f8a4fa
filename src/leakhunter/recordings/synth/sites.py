"""Acoustic sites for :mod:`leakhunter.recordings.synth.synth` (``synth --site NAME``).

A site is the part of the synthetic world a utility cannot choose: the pipe material and
its pass band and resonances (where leak noise lives), the background's colour and the
sensors' self-noise, the mains and pump hum around the sensors, and the mix of interference
(what passes by). Site ``A`` is the default world, exactly as ``synth`` wrote it before
sites existed; site ``B`` is a plastic (PE/PVC) network in a busy street, where leak noise
is damped to a low band, and which a model trained on site A has never heard. Site ``C`` is
an asbestos-cement network beside a pumping station: a third world kept apart from any
choice of defaults (``benchmarks/new_site.py`` reports it, nothing is tuned on it).
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import ConfigError


@dataclass(frozen=True)
class Site:
    """Ranges (Hz, dB, shares) the sensors of a site draw from; see :data:`SITES`."""

    name: str
    description: str
    sensor_base: int  # sensor ids start here (S0101... at site A): sites never share one
    recording_base: int  # recording ids start here
    band_lo: tuple[float, float]  # leak noise high-pass corner, Hz
    band_hi: tuple[float, float]  # leak noise low-pass corner, Hz (capped at 0.75 Nyquist)
    resonance_floor: float  # pipe resonances lie above max(1.3 * band_lo, this), Hz
    resonance_bandwidth: tuple[float, float]  # Hz
    tilt: tuple[float, float]  # background PSD ~ 1/f**tilt
    hiss_db: tuple[float, float]  # sensor self-noise re background
    mains_share: float  # share of sensors hearing mains hum
    mains_db: tuple[float, float]
    pump_share: float  # share of sensors near a pump
    interference_scale: float  # multiplies SynthConfig.interference (capped at 1)
    bursts: tuple[float, float, float, float] | None  # speech, knocks, traffic, chirps;
                                                      # None: equally likely


SITES: dict[str, Site] = {
    "A": Site("A", "metal mains (cast iron, steel), quiet residential streets at night",
              sensor_base=101, recording_base=1, band_lo=(100, 250), band_hi=(900, 1500),
              resonance_floor=300, resonance_bandwidth=(80, 400), tilt=(0.7, 1.3),
              hiss_db=(-22, -10), mains_share=0.6, mains_db=(-22, -8), pump_share=0.3,
              interference_scale=1.0, bursts=None),
    "B": Site("B", "plastic mains (PE, PVC): leak noise damped below ~500 Hz, low "
                   "resonances, steeper and hissier background, loud mains, busy traffic",
              sensor_base=5101, recording_base=500001, band_lo=(35, 75),
              band_hi=(280, 500), resonance_floor=100, resonance_bandwidth=(25, 100),
              tilt=(1.2, 1.8), hiss_db=(-14, -4), mains_share=0.9, mains_db=(-14, -2),
              pump_share=0.5, interference_scale=2.0, bursts=(0.1, 0.4, 0.5, 0.0)),
    "C": Site("C", "asbestos-cement mains beside a pumping station: leak noise in a middle "
                   "band, whiter background, quiet sensors, pump hum at most sensors",
              sensor_base=7101, recording_base=700001, band_lo=(60, 140),
              band_hi=(500, 900), resonance_floor=180, resonance_bandwidth=(40, 200),
              tilt=(0.3, 0.8), hiss_db=(-30, -18), mains_share=0.3, mains_db=(-20, -10),
              pump_share=0.8, interference_scale=1.5, bursts=(0.3, 0.2, 0.2, 0.3)),
}


def get_site(name: str) -> Site:
    """The site called ``name`` (case-insensitive); :class:`ConfigError` naming the known
    ones otherwise."""
    site = SITES.get(name.upper())
    if site is None:
        raise ConfigError(f"unknown site {name!r}; known sites: {', '.join(SITES)}")
    return site
