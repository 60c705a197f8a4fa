"""Where on the pipe: the leak correlator's physics (:mod:`.wave_speed`) and its delay
estimate (:mod:`.correlation`, generalised cross-correlation of sensor pairs, batched).

Between ``decisions`` and ``report`` in the layers: the correlator may weight time windows
by a detector's segment probabilities, and the survey report draws its locations.
"""
