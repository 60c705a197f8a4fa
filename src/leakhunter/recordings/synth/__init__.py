"""Synthetic labelled hydrophone recordings (`leakhunter synth`): :mod:`.synth` plans and
writes them, :mod:`.sounds` holds the sound ingredients (shaped noise, tones, interference
bursts), :mod:`.sites` the acoustic sites a recording's sensors draw from."""
