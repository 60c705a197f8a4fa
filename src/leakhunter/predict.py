"""`leakhunter predict`: decisions on new recordings of any length.

Recordings are decoded and scored in worker processes, several recordings per task so the
model sees batches of segments from many recordings; long ones are read in blocks
(:mod:`.audio_stream`), so an hour-long file never needs its whole waveform or spectrogram
in memory. Features come from the same :mod:`.audio` and :mod:`.features` code as
``build``, with the feature config stored in the model, and are rounded to float16 exactly
as datasets store them, so ``predict`` reproduces ``evaluate``'s decisions. With an ONNX
model (``export``), onnxruntime scores raw segments instead of torch.

A recording that cannot be judged (unreadable, empty, NaN/inf samples, silence, gain at or
below the minimum) gets a status and no decision; one shorter than a segment is padded to
one segment and flagged.
"""

from __future__ import annotations

import glob
import itertools
import logging
import multiprocessing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .audio import AUDIO_EXTENSIONS, gain_too_low, parse_name
from .audio_stream import SegmentAssembler, waveform_pieces
from .config import AudioConfig, FeatureConfig, from_dict
from .errors import AudioError, InputError
from .features import LogMel, extract, segment_starts
from .log import progress_bar
from .metrics import recording_scores
from .model import load_model
from .parallel import Workers, default_workers
from .precision import autocast, resolve_amp
from .safe_write import writes

log = logging.getLogger(__name__)

BLOCK_S = 60.0  # recordings longer than this are read in blocks of this length
MODEL_BATCH = 256  # segments per forward pass (larger ran slower on CPU: see evaluate)


@dataclass(frozen=True)
class Decision:
    """How segment probabilities become a recording's decision."""

    threshold: float
    vote_fraction: float
    aggregate: str


def find_recordings(inputs: Iterable[str | Path]) -> list[Path]:
    """Files, folders (recursive) and glob patterns to a sorted list of audio files.

    A named file is taken whatever its extension; folders and patterns contribute audio
    files only. Raises :class:`InputError` for a path that does not exist or matches
    nothing, and when no recording is found at all.
    """
    found: dict[str, Path] = {}
    for item in inputs:
        text = str(item)
        matches = [Path(m) for m in sorted(glob.glob(text, recursive=True))] \
            if glob.has_magic(text) else [Path(text)]
        if not matches or not matches[0].exists():
            raise InputError(f"{text}: no such file or folder" if not glob.has_magic(text)
                             else f"{text}: matches nothing")
        for path in matches:
            if path.is_dir():
                for f in sorted(path.rglob("*")):
                    if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS \
                            and not f.name.startswith("."):
                        found[str(f)] = f
            elif path.is_file() and (not glob.has_magic(text)
                                     or path.suffix.lower() in AUDIO_EXTENSIONS):
                found[str(path)] = path
    if not found:
        raise InputError("no recordings found in the given inputs")
    return list(found.values())


class Predictor:
    """Scores recordings with a ``best.pt`` (torch) or an exported ONNX model.

    ``threshold``, ``vote_fraction`` and ``aggregate`` default to what the model carries
    (chosen on validation data by ``evaluate``); a model without a threshold uses 0.5.
    """

    def __init__(self, model: str | Path, *, onnx: str | Path | None = None,
                 threshold: float | None = None, vote_fraction: float | None = None,
                 aggregate: str | None = None, workers: int = 0):
        self.model_path = Path(model)
        self.onnx = Path(onnx) if onnx else None
        _, meta = load_model(self.model_path)
        self.meta = meta
        self.classes: list[str] = meta["class_names"]
        self.feature = from_dict(FeatureConfig, meta["feature_config"])
        self.audio = from_dict(AudioConfig, meta.get("audio_config") or {})
        if threshold is None and meta.get("threshold") is None:
            log.warning("%s has no threshold yet (run `leakhunter evaluate`); using 0.5",
                        self.model_path)
        self.decision = Decision(
            threshold if threshold is not None else (meta.get("threshold") or 0.5),
            vote_fraction or meta.get("vote_fraction") or 0.5,
            aggregate or meta.get("aggregate") or "vote")
        self.workers = workers or default_workers()

    def predict(self, inputs: Iterable[str | Path], segments: bool = False
                ) -> Iterator[dict[str, Any]]:
        """One record per recording (input order); with ``segments``, each record also
        holds ``timeline``: a list of ``(start_s, leak_probability, top_class)``."""
        paths = find_recordings(inputs)
        tasks = [([str(p) for p in paths[i:i + 8]], str(self.model_path),
                  str(self.onnx) if self.onnx else None, self.feature, self.audio)
                 for i in range(0, len(paths), 8)]
        with Workers(min(self.workers, len(tasks))) as pool, \
                progress_bar(total=len(paths), desc="predict", unit="rec") as bar:
            for results in pool.map(_score_chunk, tasks):
                for path, result in results:
                    yield self._record(path, result, segments)
                    bar.update(1)

    def _record(self, path: str, result: dict[str, Any], segments: bool) -> dict[str, Any]:
        meta = parse_name(path)
        d = self.decision
        record: dict[str, Any] = {
            "path": path, "sensor_id": meta.sensor_id, "recording_id": meta.recording_id,
            "timestamp": meta.timestamp, "gain_db": meta.gain_db,
            "duration_s": result.get("duration_s"), "segments": 0, "leak_probability": None,
            "vote_fraction": None, "decision": None, "threshold": d.threshold,
            "status": result["status"]}
        prob = result.get("leak")
        if prob is None:
            return record
        n = prob.size
        score = recording_scores(np.zeros(n, np.int64), prob, 1, d.aggregate,
                                 d.vote_fraction)[0]
        record.update(segments=n, leak_probability=float(prob.mean()),
                      vote_fraction=float((prob >= d.threshold).mean()),
                      decision="LEAK" if score >= d.threshold else "NO LEAK")
        if len(self.classes) > 2:
            mean = result["classes"].mean(axis=0)
            record["top_class"] = self.classes[int(mean.argmax())]
            record.update({f"p_{c}": float(p) for c, p in zip(self.classes, mean)})
        if segments:
            top = result["classes"].argmax(axis=1)
            record["timeline"] = [(float(s), float(p), self.classes[int(c)]) for s, p, c in
                                  zip(segment_starts(n, self.feature), prob, top)]
        return record


# --- worker side ----------------------------------------------------------------------------

_SCORERS: dict[tuple[str, str | None], Any] = {}  # one model (or ONNX session) per process


def _scorer(model_path: str, onnx: str | None) -> Any:
    key = (model_path, onnx)
    if key not in _SCORERS:
        if onnx:
            from .export import OnnxScorer

            _SCORERS[key] = OnnxScorer(onnx, threads=1 if _in_worker() else 0)
        else:
            model, meta = load_model(model_path)
            _SCORERS[key] = (model, LogMel(from_dict(FeatureConfig, meta["feature_config"])))
    return _SCORERS[key]


@torch.inference_mode()
def _score(scorer: Any, waves: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(leak probability [S], class probabilities [S, C]) for each waveform's segments,
    all segments in one batch."""
    counts = []
    if isinstance(scorer, tuple):
        model, front = scorer
        mels = [m.astype(np.float16) for m in extract(waves, front)]  # as datasets store
        counts = [m.shape[0] for m in mels]
        cpu = torch.device("cpu")
        x = torch.from_numpy(np.concatenate(mels))
        leak_parts, class_parts = [], []
        for lo in range(0, x.shape[0], MODEL_BATCH):  # bounded activations, cache-sized
            with autocast(resolve_amp("auto", cpu), cpu):  # as evaluate scores
                out = model(x[lo:lo + MODEL_BATCH].float())
            leak_parts.append(model.leak_probability(out))
            class_parts.append(torch.softmax(model.class_logits(out).float(), dim=1))
        leak = torch.cat(leak_parts).numpy()
        classes = torch.cat(class_parts).numpy()
    else:
        size, hop = scorer.card["segment_samples"], scorer.card["segment_hop"]
        segs = [np.lib.stride_tricks.sliding_window_view(w, size)[::hop] for w in waves]
        counts = [s.shape[0] for s in segs]
        leak, classes = scorer.score(np.ascontiguousarray(np.concatenate(segs), np.float32))
    bounds = np.cumsum(counts)[:-1]
    return list(zip(np.split(leak, bounds), np.split(classes, bounds)))


def _score_chunk(paths: list[str], model_path: str, onnx: str | None, feature: FeatureConfig,
                 audio: AudioConfig) -> list[tuple[str, dict[str, Any]]]:
    """Score recordings; short ones together in one batch, long ones block by block."""
    scorer = _scorer(model_path, onnx)
    results: dict[str, dict[str, Any]] = {}
    batch: list[tuple[str, np.ndarray]] = []
    for path in paths:
        if gain_too_low(parse_name(path), audio):
            results[path] = {"status": "out of water"}
            continue
        try:
            duration, _, pieces = waveform_pieces(path, feature, audio, BLOCK_S)
            first, second = next(pieces), next(pieces, None)
            assembler = SegmentAssembler(feature)
            if second is None:  # read whole: batched below with the other short ones
                wave = assembler.push(first)
                batch.append((path, wave if wave.size else assembler.finish()))
                results[path] = {"duration_s": duration}
            else:  # a long recording: score block by block, keep only probabilities
                scored = []
                for piece in itertools.chain([first, second], pieces):
                    wave = assembler.push(piece)
                    if wave.size:
                        scored.extend(_score(scorer, [wave]))
                results[path] = {"duration_s": duration,
                                 "leak": np.concatenate([s[0] for s in scored]),
                                 "classes": np.concatenate([s[1] for s in scored])}
        except AudioError as exc:
            results[path] = {"status": _status(exc.reason)}
            continue
        results[path]["status"] = "padded" if assembler.padded else "ok"
    if batch:
        for (path, _), (leak, classes) in zip(batch, _score(scorer, [w for _, w in batch])):
            results[path].update(leak=leak, classes=classes)
    return [(p, results[p]) for p in paths]


def _in_worker() -> bool:
    return multiprocessing.parent_process() is not None


def _status(reason: str) -> str:
    """A short status word from an :class:`AudioError` reason."""
    for word, status in (("silence", "silence"), ("NaN", "invalid samples"),
                         ("empty", "empty"), ("unreadable", "unreadable"),
                         ("cannot open", "unreadable")):
        if word in reason:
            return status
    return "unreadable"


# --- output ---------------------------------------------------------------------------------

COLUMNS = ("path", "sensor_id", "recording_id", "timestamp", "gain_db", "duration_s",
           "segments", "leak_probability", "vote_fraction", "decision", "threshold", "status")


def write_predictions(records: list[dict[str, Any]], out: Path, fmt: str,
                      classes: list[str]) -> Path:
    """Write the records as CSV (one row per recording; multi-class adds ``top_class`` and
    ``p_<CLASS>`` columns) or JSON, through a temporary file. Timelines go to
    :func:`write_timeline`, not here."""
    import csv
    import json

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    rows = [{k: v for k, v in r.items() if k != "timeline"} for r in records]
    if fmt == "json":
        tmp.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    else:
        extra = ["top_class", *[f"p_{c}" for c in classes]] if len(classes) > 2 else []
        with tmp.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=[*COLUMNS, *extra])
            writer.writeheader()
            for row in rows:
                writer.writerow({k: _cell(row.get(k)) for k in writer.fieldnames})
    tmp.replace(out)
    return out


def write_timeline(records: list[dict[str, Any]], out: Path) -> Path:
    """Per-segment CSV: path, start_s, leak_probability, top_class."""
    import csv

    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "start_s", "leak_probability", "top_class"])
        for r in records:
            for start, prob, top in r.get("timeline", []):
                writer.writerow([r["path"], f"{start:.3f}", f"{prob:.6f}", top])
    tmp.replace(out)
    return out


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def predict(model: str | Path, inputs: Iterable[str | Path], **kwargs: Any
            ) -> list[dict[str, Any]]:
    """Decisions for ``inputs`` (files, folders, globs) as a list of records; keyword
    arguments as :class:`Predictor` (and ``segments=True`` for timelines)."""
    segments = kwargs.pop("segments", False)
    return list(Predictor(model, **kwargs).predict(inputs, segments=segments))


# A full disk or an I/O error while writing an output: one line naming the file, and no
# ``.tmp`` left behind (the previous file stays until the final rename).
write_predictions = writes("out", "writing decisions")(write_predictions)
write_timeline = writes("out", "writing the segment timeline")(write_timeline)
