"""Stage 1 of `leakhunter build`, **extract**: recordings -> metadata and a features spool.

Each recording is decoded once in a worker process, checked (unreadable, empty, NaN,
silence, shorter than ``--min-duration``), hashed, resampled, cleaned, zero-padded to one
segment when shorter than one (as ``predict`` does), and turned into float16 log-mel
segments: in the workers on CPU, or batched over many recordings in the main process on
CUDA (:func:`features_in_main`), the workers then only decoding. The features stream, in
input order, into a spool file (raw float16 ``[segments, n_mels, frames]``); what was
learnt of each recording comes back as a :class:`Scanned`. Recordings whose name gives a
gain at or below the minimum (sensor out of water) are excluded undecoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import AudioConfig, BuildConfig, FeatureConfig
from ..errors import AudioError
from ..recordings.audio import NameMeta, gain_too_low, load_recording, pad_to_segment, parse_name
from ..recordings.features import LogMel
from ..recordings.features import extract as log_mel
from ..runtime.log import progress_bar
from ..runtime.parallel import Workers
from .sources import Source

MAIN_BATCH_SAMPLES = 2**24  # samples per device call when the main process computes
                            # features: 64 MiB of float32, ~200 recordings of 10 s at 8 kHz


@dataclass(frozen=True)
class Scanned:
    """What the extraction learnt of one recording; ``problem`` is why it is not used."""

    source: Source
    meta: NameMeta
    content_hash: str = ""
    duration_s: float = 0.0
    sample_rate: int = 0
    segments: int = 0  # its rows in the spool
    problem: str = ""
    out_of_water: bool = False
    padded: bool = False  # shorter than one segment: zero-padded to one
    truncated: str = ""  # kept although the file holds less than its header declares


def features_in_main(device: torch.device) -> bool:
    """Whether the main process computes features (batched over many recordings) while the
    workers only decode and resample: on a GPU, which one process must own."""
    return device.type == "cuda"


_FRONT_ENDS: dict[FeatureConfig, LogMel] = {}  # one per worker process and config


def _front_end(feature: FeatureConfig) -> LogMel:
    """This process's log-mel module for ``feature``, made once (its filters are reused)."""
    if feature not in _FRONT_ENDS:
        _FRONT_ENDS[feature] = LogMel(feature)
    return _FRONT_ENDS[feature]


def _extract_chunk(sources: list[Source], feature: FeatureConfig, audio: AudioConfig,
                   features_here: bool) -> list[tuple[Scanned, np.ndarray | None]]:
    """Per source: what was learnt, and the payload -- float16 log-mel
    ``[S, n_mels, frames]`` when ``features_here``, else the float32 waveform (``None`` for
    a recording that is not used)."""
    scanned: list[Scanned] = []
    waves: list[np.ndarray | None] = []
    for src in sources:
        meta = parse_name(src.path)
        wave = None
        if gain_too_low(meta, audio):
            item = Scanned(src, meta, out_of_water=True, problem=f"gain {meta.gain_db:g} dB <= "
                           f"{audio.min_gain_db:g} dB (sensor out of water)")
        else:
            try:
                rec = load_recording(src.path, feature, audio)
                wave, padded = pad_to_segment(rec.waveform, feature)
                item = Scanned(src, meta, rec.content_hash, rec.duration_s,
                               rec.original_sample_rate, feature.n_segments(wave.size),
                               padded=padded, truncated=rec.truncated)
            except AudioError as exc:
                item = Scanned(src, meta, problem=exc.reason)
        scanned.append(item)
        waves.append(wave)
    if not features_here:
        return list(zip(scanned, waves))
    return list(zip(scanned, _features(waves, _front_end(feature), "cpu")))


def _features(waves: list[np.ndarray | None], front_end: LogMel,
              device: torch.device | str, flat: bool | None = None
              ) -> list[np.ndarray | None]:
    """float16 log-mel for each waveform (``None`` stays ``None``), one batch."""
    good = [w for w in waves if w is not None]
    mels = iter(log_mel(good, front_end, device, flat=flat, dtype=torch.float16)
                if good else [])
    return [next(mels) if w is not None else None for w in waves]


def extract(sources: list[Source], config: BuildConfig, pool: Workers, device: torch.device,
            spool: Path) -> list[Scanned]:
    """Extract every recording's features into ``spool`` (input order); returns one
    :class:`Scanned` per source, in the same order, whose ``segments`` are its rows there
    (0 for one not used).

    On the CPU each worker computes the features of its recordings. When the main process
    computes them (:func:`features_in_main`), the workers send waveforms, which are
    gathered into batches of about :data:`MAIN_BATCH_SAMPLES` samples, one device call each.
    """
    in_main = features_in_main(device)
    front_end = LogMel(config.feature).to(device) if in_main else None
    chunks = [sources[i:i + config.files_per_task]
              for i in range(0, len(sources), config.files_per_task)]
    tasks = [(chunk, config.feature, config.audio, not in_main) for chunk in chunks]
    scanned: list[Scanned] = []
    waiting: list[tuple[Scanned, np.ndarray | None]] = []  # waveforms for the next batch
    waiting_samples = 0
    with spool.open("wb") as fh, progress_bar(total=len(sources), desc="features",
                                              unit="rec") as bar:

        def write(results: list[tuple[Scanned, np.ndarray | None]]) -> None:
            for item, mel in results:
                if mel is not None:
                    fh.write(np.ascontiguousarray(mel).data)
                scanned.append(item)
            bar.update(len(results))

        for results in pool.map(_extract_chunk, tasks):
            if front_end is None:
                write(results)
                continue
            waiting.extend(results)
            waiting_samples += sum(w.size for _, w in results if w is not None)
            if waiting_samples >= MAIN_BATCH_SAMPLES:
                write(_in_batch(waiting, front_end, device))
                waiting, waiting_samples = [], 0
        if waiting:
            write(_in_batch(waiting, front_end, device))
    return scanned


def _in_batch(results: list[tuple[Scanned, np.ndarray | None]], front_end: LogMel,
              device: torch.device) -> list[tuple[Scanned, np.ndarray | None]]:
    """Waveforms replaced by their float16 log-mel, all computed in one flat batch."""
    mels = _features([w for _, w in results], front_end, device, flat=True)
    return [(item, mel) for (item, _), mel in zip(results, mels)]
