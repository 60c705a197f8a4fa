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

from ..config import AudioConfig, FeatureConfig, from_dict
from ..errors import AudioError, InputError
from ..model import familiarity
from ..model.cnn import load_model
from ..model.metrics import recording_classes, recording_scores
from ..recordings.audio import AUDIO_EXTENSIONS, gain_too_low, parse_name
from ..recordings.features import LogMel, extract, segment_starts
from ..recordings.stream import SegmentAssembler, waveform_pieces
from ..runtime import devices
from ..runtime.amp import autocast, resolve_amp
from ..runtime.log import progress_bar
from ..runtime.parallel import Workers, default_workers

log = logging.getLogger(__name__)

BLOCK_S = 60.0  # recordings longer than this are read in blocks of this length
MODEL_BATCH = {"cpu": 256,  # segments per forward pass (larger ran slower on CPU: evaluate)
               "cuda": 8192}
MAIN_SEGMENTS = 32768  # segments gathered from the workers per model call in the main process
FILES_PER_TASK = 8  # recordings per worker task, at most (fewer towards the end: task_chunks)


@dataclass(frozen=True)
class Decision:
    """How segment probabilities become a recording's decision."""

    threshold: float
    vote_fraction: float
    aggregate: str
    class_aggregate: str = "vote"  # multi-class: a recording's class by vote or mean


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
    (chosen on validation data by ``train``, or by ``calibrate``); a model without a
    threshold (written by an older leakhunter) uses 0.5. ``min_duration`` (seconds)
    defaults to the model's, i.e. its dataset's ``build --min-duration``.

    ``device``: where the torch model runs. On the CPU each worker process decodes, computes
    features and scores its recordings; on CUDA the workers decode and compute features,
    and this process scores the segments of many recordings per GPU call
    (:data:`MAIN_SEGMENTS`). ONNX models run in onnxruntime on the CPU.
    """

    def __init__(self, model: str | Path, *, onnx: str | Path | None = None,
                 threshold: float | None = None, vote_fraction: float | None = None,
                 aggregate: str | None = None, workers: int = 0,
                 min_duration: float | None = None, class_aggregate: str | None = None,
                 device: str = "auto"):
        self.model_path = Path(model)
        self.onnx = Path(onnx) if onnx else None
        if self.onnx and devices.parse(device) not in (None, torch.device("cpu")):
            raise InputError(f"--device {device}: an --onnx model runs in onnxruntime on "
                             f"the CPU; leave --device out or give cpu")
        self.choice = devices.Choice(torch.device("cpu"), "onnxruntime runs on the CPU") \
            if self.onnx else devices.resolve(device, "predict")
        self.device = self.choice.device
        model_obj, meta = load_model(self.model_path, self.device)
        self.model = model_obj if _score_in_main(self.device) else None
        self.meta = meta
        self.classes: list[str] = meta["class_names"]
        self.feature = from_dict(FeatureConfig, meta["feature_config"])
        audio = dict(meta.get("audio_config") or {})  # as the model's dataset was built
        if min_duration is not None:
            audio["min_duration_s"] = min_duration
        self.audio = from_dict(AudioConfig, audio)
        if threshold is None and meta.get("threshold") is None:
            log.warning("%s carries no threshold (written before train chose one); using "
                        "0.5: `leakhunter calibrate` writes a copy with one chosen on "
                        "validation data", self.model_path)
        self.decision = Decision(
            threshold if threshold is not None else (meta.get("threshold") or 0.5),
            vote_fraction or meta.get("vote_fraction") or 0.5,
            aggregate or meta.get("aggregate") or "vote",
            class_aggregate or meta.get("class_aggregate") or "vote")
        self.workers = workers or default_workers()
        self._announced = False
        # familiarity needs the torch model's embeddings: none from an ONNX graph
        self.familiarity = None if self.onnx else familiarity.stats_of(meta, str(model))
        if self.onnx:
            log.info("--onnx: the familiarity figure is left empty (it needs the torch "
                     "model's embeddings)")

    def identity(self) -> dict[str, Any]:
        """What decides this predictor's rows: the model file's (and ONNX file's) SHA-256,
        the decision rule, the classes. Rows of two predictors with the same identity can
        share one results file (`predict --resume`)."""
        from ..runtime.safe_write import file_sha256

        d = self.decision
        return {"model_sha256": file_sha256(self.model_path),
                "onnx_sha256": file_sha256(self.onnx) if self.onnx else None,
                "threshold": d.threshold, "vote_fraction": d.vote_fraction,
                "aggregate": d.aggregate, "class_aggregate": d.class_aggregate,
                "min_duration_s": self.audio.min_duration_s, "classes": self.classes}

    def predict(self, inputs: Iterable[str | Path], segments: bool = False
                ) -> Iterator[dict[str, Any]]:
        """One record per recording (input order); with ``segments``, each record also
        holds ``timeline``: a list of ``(start_s, leak_probability, top_class)``."""
        paths = find_recordings(inputs)
        if not self._announced:  # once: `predict --watch` calls this for every batch
            log.info("model on %s", self.choice.describe())
            self._announced = True
        in_main = self.model is not None
        tasks = [(chunk, str(self.model_path), str(self.onnx) if self.onnx else None,
                  self.feature, self.audio, in_main)
                 for chunk in task_chunks([str(p) for p in paths], self.workers)]
        waiting: list[tuple[str, dict[str, Any]]] = []  # features for the next model call
        waiting_segments = 0
        with Workers(min(self.workers, len(tasks))) as pool, \
                progress_bar(total=len(paths), desc="predict", unit="rec") as bar:
            for results in pool.map(_score_chunk, tasks):
                if in_main:
                    waiting.extend(results)
                    waiting_segments += sum(len(r.get("mel", ())) for _, r in results)
                    if waiting_segments < MAIN_SEGMENTS:
                        continue
                    results, waiting, waiting_segments = self._score_waiting(waiting), [], 0
                for path, result in results:
                    yield self._record(path, result, segments)
                    bar.update(1)
            for path, result in self._score_waiting(waiting):
                yield self._record(path, result, segments)
                bar.update(1)

    def _score_waiting(self, waiting: list[tuple[str, dict[str, Any]]]
                       ) -> list[tuple[str, dict[str, Any]]]:
        """Score the features the workers sent, all recordings in one model call."""
        holders = [r for _, r in waiting if "mel" in r]
        if not holders:
            return waiting
        mels = [r.pop("mel") for r in holders]
        for result, scores in zip(holders, _model_scores(self.model, mels, self.device,
                                                         self.familiarity)):
            result.update(scores)
        return waiting

    def _record(self, path: str, result: dict[str, Any], segments: bool) -> dict[str, Any]:
        meta = parse_name(path)
        d = self.decision
        record: dict[str, Any] = {
            "path": path, "sensor_id": meta.sensor_id, "recording_id": meta.recording_id,
            "timestamp": meta.timestamp, "gain_db": meta.gain_db,
            "duration_s": result.get("duration_s"), "segments": 0, "leak_probability": None,
            "vote_fraction": None, "decision": None, "threshold": d.threshold,
            "status": result["status"], "familiarity": None}
        prob = result.get("leak")
        if prob is None:
            return record
        n = prob.size
        score = recording_scores(np.zeros(n, np.int64), prob, 1, d.aggregate,
                                 d.vote_fraction)[0]
        record.update(segments=n, leak_probability=float(prob.mean()),
                      vote_fraction=float((prob >= d.threshold).mean()),
                      decision="LEAK" if score >= d.threshold else "NO LEAK")
        if "distance" in result:  # judged all the same; the flag says on what grounds
            distance = result["distance"].mean(axis=0)  # [2]: embedding, input
            record["familiarity"] = float(familiarity.familiarity(self.familiarity, distance))
            # "padded" says more of a recording that is mostly zeros: it stays
            if record["status"] == "ok" and familiarity.unfamiliar(self.familiarity, distance):
                record["status"] = "unfamiliar"
        if len(self.classes) > 2:  # the class by the rule evaluate uses
            predicted, mean = recording_classes(np.zeros(n, np.int64), result["classes"], 1,
                                                d.class_aggregate)
            record["predicted_class"] = self.classes[int(predicted[0])]
            record.update({f"p_{c}": float(p) for c, p in zip(self.classes, mean[0])})
        if segments:
            top = result["classes"].argmax(axis=1)
            record["timeline"] = [(float(s), float(p), self.classes[int(c)]) for s, p, c in
                                  zip(segment_starts(n, self.feature), prob, top)]
        return record


# --- worker side ----------------------------------------------------------------------------

_SCORERS: dict[tuple[str, str | None, bool], Any] = {}  # one model (or ONNX session) per process


def task_chunks(paths: list[str], workers: int) -> list[list[str]]:
    """``paths`` in consecutive chunks for the workers: :data:`FILES_PER_TASK` at first,
    then smaller ones as the end nears (a quarter of what is left per worker), down to one
    file, so that no worker is left with a long chunk while the others are idle."""
    chunks, i = [], 0
    while i < len(paths):
        size = max(1, min(FILES_PER_TASK, (len(paths) - i) // (4 * max(workers, 1))))
        chunks.append(paths[i:i + size])
        i += size
    return chunks


def _score_in_main(device: torch.device) -> bool:
    """Whether this process runs the model on the workers' features: on a GPU, which one
    process must own (workers are forked and never touch CUDA)."""
    return device.type == "cuda"


def _scorer(model_path: str, onnx: str | None, features_only: bool) -> Any:
    """This process's scorer: an ONNX session, ``(model, front end)``, or (``features_only``)
    the front end alone."""
    key = (model_path, onnx, features_only)
    if key not in _SCORERS:
        if onnx:
            from ..model.export import OnnxScorer

            _SCORERS[key] = OnnxScorer(onnx, threads=1 if _in_worker() else 0)
        else:
            model, meta = load_model(model_path)
            front = LogMel(from_dict(FeatureConfig, meta["feature_config"]))
            _SCORERS[key] = front if features_only else (model, front,
                                                         meta.get("familiarity"))
    return _SCORERS[key]


def _model_scores(model: Any, mels: list[np.ndarray], device: torch.device,
                  stats: dict[str, Any] | None = None) -> list[dict[str, np.ndarray]]:
    """``leak`` (probability ``[S]``) and ``classes`` (probabilities ``[S, C]``) for each
    float16 log-mel ``[S, M, F]``: all segments together, in model batches of
    :data:`MODEL_BATCH` (bounded activations: cache-sized on CPU, large on a GPU). With
    familiarity ``stats``, also ``distance`` ``[S, 2]`` (from the same forward pass)."""
    counts = [m.shape[0] for m in mels]
    x = torch.from_numpy(np.concatenate(mels))
    step = MODEL_BATCH[device.type]
    leak_parts, class_parts, distance_parts = [], [], []
    with torch.inference_mode(), autocast(resolve_amp("auto", device), device):  # as evaluate
        for lo in range(0, x.shape[0], step):
            mel = x[lo:lo + step].to(device).float()
            embedding = model.embed(mel)
            out = model.from_embedding(embedding)
            leak_parts.append(model.leak_probability(out).float())
            class_parts.append(torch.softmax(model.class_logits(out).float(), dim=1))
            if stats is not None:
                distance_parts.append(familiarity.segment_distances(stats, mel,
                                                                    embedding.float()))
    leak = torch.cat(leak_parts).cpu().numpy()  # sync
    classes = torch.cat(class_parts).cpu().numpy()
    bounds = np.cumsum(counts)[:-1]
    results = [{"leak": lk, "classes": cl}
               for lk, cl in zip(np.split(leak, bounds), np.split(classes, bounds))]
    if stats is not None:
        distances = torch.cat(distance_parts).cpu().numpy()
        for result, dist in zip(results, np.split(distances, bounds)):
            result["distance"] = dist
    return results


@torch.inference_mode()
def _score(scorer: Any, waves: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Per waveform: ``leak`` and ``classes`` of its segments, or (front end only) ``mel``,
    its float16 log-mel ``[S, M, F]``; all segments in one batch."""
    if isinstance(scorer, LogMel):
        return [{"mel": m} for m in extract(waves, scorer, dtype=torch.float16)]
    if isinstance(scorer, tuple):
        model, front, stats = scorer
        mels = extract(waves, front, dtype=torch.float16)  # rounded as datasets store them
        return _model_scores(model, mels, torch.device("cpu"), stats)
    size, hop = scorer.card["segment_samples"], scorer.card["segment_hop"]
    segs = [np.lib.stride_tricks.sliding_window_view(w, size)[::hop] for w in waves]
    leak, classes = scorer.score(np.ascontiguousarray(np.concatenate(segs), np.float32))
    bounds = np.cumsum([s.shape[0] for s in segs])[:-1]
    return [{"leak": lk, "classes": cl}
            for lk, cl in zip(np.split(leak, bounds), np.split(classes, bounds))]


def _score_chunk(paths: list[str], model_path: str, onnx: str | None, feature: FeatureConfig,
                 audio: AudioConfig, features_only: bool = False
                 ) -> list[tuple[str, dict[str, Any]]]:
    """Score recordings (or, ``features_only``, compute their features for the main
    process); short ones together in one batch, long ones block by block."""
    scorer = _scorer(model_path, onnx, features_only)
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
            else:  # a long recording: block by block, keep only what the blocks give
                scored = []
                for piece in itertools.chain([first, second], pieces):
                    wave = assembler.push(piece)
                    if wave.size:
                        scored.extend(_score(scorer, [wave]))
                results[path] = {"duration_s": duration,
                                 **{k: np.concatenate([s[k] for s in scored])
                                    for k in scored[0]}}
        except AudioError as exc:
            results[path] = {"status": _status(exc.reason)}
            continue
        results[path]["status"] = "padded" if assembler.padded else "ok"
    if batch:
        for (path, _), scores in zip(batch, _score(scorer, [w for _, w in batch])):
            results[path].update(scores)
    return [(p, results[p]) for p in paths]


def _in_worker() -> bool:
    return multiprocessing.parent_process() is not None


def _status(reason: str) -> str:
    """A short status word from an :class:`AudioError` reason."""
    for word, status in (("too short", "too short"), ("silence", "silence"),
                         ("NaN", "invalid samples"),
                         ("empty", "empty"), ("unreadable", "unreadable"),
                         ("cannot open", "unreadable")):
        if word in reason:
            return status
    return "unreadable"


def predict(model: str | Path, inputs: Iterable[str | Path], **kwargs: Any
            ) -> list[dict[str, Any]]:
    """Decisions for ``inputs`` (files, folders, globs) as a list of records; keyword
    arguments as :class:`Predictor` (and ``segments=True`` for timelines)."""
    segments = kwargs.pop("segments", False)
    return list(Predictor(model, **kwargs).predict(inputs, segments=segments))


# A full disk or an I/O error while writing an output: one line naming the file, and no
# ``.tmp`` left behind (the previous file stays until the final rename).
