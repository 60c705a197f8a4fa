"""The mel range fitted to the recordings: no band above what every recording can hold.

``build`` resamples every recording to ``FeatureConfig.sample_rate`` (8,192 Hz). A
recording made at 4,096 Hz holds nothing above 2,048 Hz, so with the mel range running to
the resampled Nyquist (4,096 Hz) 9 of 32 bands carried nothing in any segment; worse, they
would carry something for a sensor recording at a higher rate, and a model would learn what
a sample rate sounds like. When the build's ``fmax`` is ``None`` it becomes the lowest
source Nyquist frequency among the recordings (never above the resampled Nyquist), read
from the file headers before any feature is computed; the dataset's ``config.json`` and
every model trained on it then carry that value, so ``predict`` computes the same bands.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable

from ..config import FeatureConfig
from ..recordings.audio import source_rate

log = logging.getLogger(__name__)


def fitted(feature: FeatureConfig, paths: Iterable[str]) -> FeatureConfig:
    """``feature`` with ``fmax`` set to the lowest source Nyquist frequency of ``paths``
    when ``fmax`` is ``None`` and that frequency lies below ``sample_rate / 2`` (as it
    is); ``feature`` itself otherwise."""
    if feature.fmax is not None:
        return feature
    rates = [r for r in map(source_rate, paths) if r]
    if not rates:
        return feature
    nyquist = min(rates) / 2
    if nyquist >= feature.sample_rate / 2 or nyquist <= feature.fmin:
        return feature
    log.info("mel bands up to %g Hz: the lowest source Nyquist frequency (recordings at "
             "%d Hz); bands above it would carry nothing", nyquist, min(rates))
    return dataclasses.replace(feature, fmax=float(nyquist))
