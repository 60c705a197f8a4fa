"""The raw CNN's input (``study --models cnn-raw``): each long segment's waveform itself.

Ma et al. (2025, Table 2) compare the mel CNN with a CNN on the raw segments. Here that CNN
is the same network (:class:`~leakhunter.model.cnn.LeakCNN`, trained by ``train``) fed one
row of ``L`` samples instead of ``n_mels`` rows of frames: its 3 x 3 convolutions see only
their middle row on a one-row input (the others meet the zero padding), so they are 1 x 3
convolutions along time, and its pooling and head are unchanged. The segments are cut from
the recordings exactly where the cell's log-mels were (the same reader, rate, start times
and zero padding), and stored in the same HDF5 schema as ``[S, 1, L]`` float16 (the
waveform is in [-1, 1], where float16 keeps 11 bits).

The schema's shape comes from a :class:`FeatureConfig`; :func:`raw_feature` is the one
whose ``[n_mels, frames_per_segment]`` is ``[1, L]`` (1 band, 8-point frames one sample
apart over ``L + 7`` samples), which only ever describes these files: no log-mel is
computed from it. The raw shards are built once per cell beside its log-mel shards
(``features/<cell>-<key>/raw/``) and reused like them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
from filelock import FileLock

from ..config import SPLITS, AudioConfig, FeatureConfig, from_dict
from ..dataset.store import (
    SPLIT_FILES,
    FileRecord,
    SplitWriter,
    open_split,
    replace_into_place,
)
from ..errors import LeakhunterError
from ..recordings.audio import load_recording, pad_to_segment
from ..runtime import safe_write

log = logging.getLogger(__name__)

RAW = "raw"  # the raw shards' folder inside a cell's features folder
DONE = "raw.json"  # written last: the raw shards are complete


def raw_feature(feature: FeatureConfig) -> FeatureConfig:
    """The shape carrier of raw segments of ``feature``'s long segments: ``n_mels`` 1 and
    ``frames_per_segment`` = ``feature.segment_samples``."""
    samples = feature.segment_samples
    return replace(feature, segment_s=(samples + 7) / feature.sample_rate, n_fft=8,
                   frame_overlap=0.875, n_mels=1, fmin=0.0, fmax=None, top_db=None)


def cached_raw(features: Path, audio: AudioConfig) -> Path:
    """The raw shards of the log-mel shards in ``features``, built now unless there."""
    out = features / RAW
    with FileLock(str(features / ".raw.lock")):  # one job builds them, the others wait
        if not (out / DONE).is_file():
            _build(features, out, audio)
    return out


def _build(features: Path, out: Path, audio: AudioConfig) -> None:
    out.mkdir(exist_ok=True)
    temps: list[Path] = []
    try:
        for split in SPLITS:
            temps.append(_raw_shard(features / SPLIT_FILES[split], out / SPLIT_FILES[split],
                                    audio))
    except BaseException:
        for temp in temps:
            temp.unlink(missing_ok=True)
        raise
    replace_into_place(temps)
    safe_write.write_json(out / DONE, {"from": str(features)})


def _raw_shard(mel_path: Path, out_path: Path, audio: AudioConfig) -> Path:
    """One raw shard: every recording of ``mel_path``, its segments cut from the audio."""
    with open_split(mel_path) as h5:
        attrs = dict(h5.attrs)
        files = {name: h5["files"][name][()] for name in h5["files"]}
    feature = from_dict(FeatureConfig, json.loads(attrs["feature_config"]))
    labels = json.loads(attrs["labels"])
    writer = SplitWriter(out_path, attrs["split"], raw_feature(feature), labels,
                         json.loads(attrs["build_config"]))
    text = {k: [v.decode() if isinstance(v, bytes) else str(v) for v in files[k]]
            for k in ("path", "sensor_id", "recording_id", "timestamp", "content_hash")}
    try:
        for row, path in enumerate(text["path"]):
            count = int(files["segment_count"][row])
            segments = segments_of(path, feature, audio, count)
            record = FileRecord(
                path=path, label=int(files["label"][row]), sensor_id=text["sensor_id"][row],
                recording_id=text["recording_id"][row], timestamp=text["timestamp"][row],
                gain_db=float(files["gain_db"][row]),
                duration_s=float(files["duration_s"][row]),
                sample_rate=int(files["sample_rate"][row]),
                content_hash=text["content_hash"][row],
                padded=bool(files["padded"][row]) if "padded" in files else False)
            starts = np.arange(count) * feature.segment_hop / feature.sample_rate
            writer.append(record, segments[:, None, :].astype(np.float16),
                          starts.astype(np.float32))
        return writer.finish()
    except BaseException:
        writer.abort()
        raise


def segments_of(path: str, feature: FeatureConfig, audio: AudioConfig,
                count: int) -> np.ndarray:
    """The first ``count`` long segments of the recording at ``path`` as float32
    ``[count, segment_samples]``, read and padded as ``build`` reads them."""
    wave, _ = pad_to_segment(load_recording(path, feature, audio).waveform, feature)
    cut = np.lib.stride_tricks.sliding_window_view(wave, feature.segment_samples)
    segments = cut[::feature.segment_hop][:count]
    if segments.shape[0] != count:
        raise LeakhunterError(f"{path}: {segments.shape[0]} segments where its log-mels "
                              f"have {count}; was it changed after the features were built?")
    return np.ascontiguousarray(segments, dtype=np.float32)
