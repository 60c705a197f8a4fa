"""Where on the pipe: the leak correlator.

:mod:`.wave_speed` (the Korteweg speed of water-borne noise per pipe material, position
from a delay), :mod:`.correlation` (batched generalised cross-correlation), :mod:`.estimate`
(window, coherent band, peak quality, interval, status), :mod:`.measures` (the noise a
peak is measured against, its width, the coherence's smoothing), :mod:`.pair_audio` (two files as
one pair of waveforms), :mod:`.pairing` (pairs CSV, sensor layout), :mod:`.detector`
(windows weighted by a leak detector), :mod:`.run` (the command's library entry),
:mod:`.plot` and :mod:`.synth_pairs` (generated pairs with known truth).

Between ``decisions`` and ``report`` in the layers: the correlator may weight time windows
by a detector's segment probabilities, and the survey report draws its locations.
"""
