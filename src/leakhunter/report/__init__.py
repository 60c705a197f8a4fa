"""The survey report: one self-contained HTML file to review a night's (or a season's)
predictions — summary and model card, sensors over nights with persistence alerts, every
recording with its timeline, spectrogram and audio, and review marks exported as the
``path,label`` manifest that ``build`` and ``learn`` read.

:mod:`.load` reads what ``predict`` wrote, :mod:`.sensors` judges sensors over nights,
:mod:`.media` encodes audio and spectrograms, :mod:`.page` writes the HTML from the
templates in ``assets/``.
"""

from .page import build_report
from .sensors import sensor_view, write_sensors_csv

__all__ = ["build_report", "sensor_view", "write_sensors_csv"]
