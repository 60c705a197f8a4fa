"""`leakhunter predict`: decisions on new recordings of any length.

Recordings (:func:`leakhunter.recordings.files.find_recordings`: the files ``build``
would take) are decoded and scored in worker processes, several recordings per task so the
model sees batches of segments from many recordings; long ones are read in blocks
(:mod:`leakhunter.recordings.stream`), so an hour-long file never needs its whole waveform
or spectrogram in memory. Features come from the same :mod:`leakhunter.recordings.audio`
and :mod:`leakhunter.recordings.features` code as ``build``, with the feature config stored
in the model, and are rounded to float16 exactly as datasets store them, so ``predict``
reproduces ``evaluate``'s decisions; a recording is decided by the model's rule
(:class:`leakhunter.model.card.Rule`). With an ONNX model (``export``), onnxruntime scores
raw segments instead of torch.

A recording that cannot be judged gets a status and no decision: the kind of its
:class:`~leakhunter.errors.AudioError` (unreadable, truncated, empty, invalid samples,
silence, too short), or ``out of water`` (gain at or below the minimum); one shorter than a
segment is padded to one segment and flagged ``padded``. With ``allow_truncated`` a
truncated file is judged on the part that is there, flagged ``truncated``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import multiprocessing
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import AudioConfig, FeatureConfig
from ..errors import AudioError, ConfigError, InputError
from ..model import familiarity
from ..model.card import load_model
from ..model.metrics import recording_classes, recording_scores
from ..model.scoring import score_mels
from ..recordings.audio import gain_too_low, parse_name
from ..recordings.features import LogMel, extract, segment_starts
from ..recordings.files import find_recordings
from ..recordings.stream import SegmentAssembler, waveform_pieces
from ..runtime import devices
from ..runtime.log import progress_bar
from ..runtime.parallel import Workers, default_workers
from ..runtime.safe_write import file_sha256

log = logging.getLogger(__name__)

BLOCK_S = 60.0  # recordings longer than this are read in blocks of this length
MAIN_SEGMENTS = 32768  # segments gathered from the workers per model call in the main process
FILES_PER_TASK = 8  # recordings per worker task, at most (fewer towards the end: task_chunks)


class Predictor:
    """Scores recordings with a ``best.pt`` (torch) or an exported ONNX model.

    ``rule`` is the model's decision rule (:class:`leakhunter.model.card.Rule`: chosen on
    validation data by ``train``, or by ``calibrate``) with ``threshold``,
    ``vote_fraction``, ``aggregate``, ``class_aggregate`` and ``min_duration`` (seconds;
    the model's is its dataset's ``build --min-duration``) in place of its own where given.

    ``device``: where the torch model runs. On the CPU each worker process decodes, computes
    features and scores its recordings; on CUDA the workers decode and compute features,
    and this process scores the segments of many recordings per GPU call
    (:data:`MAIN_SEGMENTS`). ONNX models run in onnxruntime on the CPU.
    """

    def __init__(self, model: str | Path, *, onnx: str | Path | None = None,
                 threshold: float | None = None, vote_fraction: float | None = None,
                 aggregate: str | None = None, workers: int = 0,
                 min_duration: float | None = None, class_aggregate: str | None = None,
                 device: str = "auto", allow_truncated: bool = False):
        if threshold is not None and not 0.0 <= threshold <= 1.0:  # as evaluate, calibrate
            raise ConfigError("threshold must be in [0, 1]")
        if workers < 0:
            raise ConfigError("workers must be at least 0")
        self.model_path = Path(model)
        self.onnx = Path(onnx) if onnx else None
        if self.onnx and devices.parse(device) not in (None, torch.device("cpu")):
            raise InputError(f"--device {device}: an --onnx model runs in onnxruntime on "
                             f"the CPU; leave --device out or give cpu")
        self.choice = devices.Choice(torch.device("cpu"), "onnxruntime runs on the CPU") \
            if self.onnx else devices.resolve(device, "predict")
        self.device = self.choice.device
        if self.onnx:
            _check_onnx_source(self.onnx, self.model_path)
        model_obj, card = load_model(self.model_path, self.device)
        self.model = model_obj if _score_in_main(self.device) else None
        self.card = card
        self.classes: list[str] = list(card.classes)
        self.feature = card.feature
        self.rule = card.rule.replace(threshold=threshold, vote_fraction=vote_fraction,
                                      aggregate=aggregate, class_aggregate=class_aggregate,
                                      min_duration_s=min_duration)
        # recordings are read as the model's dataset was built, to the rule's minimum; a
        # truncated file is judged only when this run allows it, whatever the build did
        self.audio = dataclasses.replace(card.audio, min_duration_s=self.rule.min_duration_s,
                                         allow_truncated=allow_truncated)
        if threshold is None and card.stored_threshold is None:
            log.warning("%s carries no threshold (written before train chose one); using "
                        "%g: `leakhunter calibrate` writes a copy with one chosen on "
                        "validation data", self.model_path, self.rule.threshold)
        self.workers = workers or default_workers()
        self._announced = False
        self._distances: dict[str, np.ndarray] = {}  # per judged path: familiarity [2]
        # familiarity needs the torch model's embeddings: none from an ONNX graph
        self.familiarity = None if self.onnx else familiarity.stats_of(card.familiarity,
                                                                         str(model))
        if self.onnx:
            log.info("--onnx: the familiarity figure is left empty (it needs the torch "
                     "model's embeddings)")

    def identity(self) -> dict[str, Any]:
        """What decides this predictor's rows: the model file's (and ONNX file's) SHA-256,
        the decision rule, the classes. Rows of two predictors with the same identity can
        share one results file (`predict --resume`)."""
        r = self.rule
        identity = {"model_sha256": file_sha256(self.model_path),
                    "onnx_sha256": file_sha256(self.onnx) if self.onnx else None,
                    "threshold": r.threshold, "vote_fraction": r.vote_fraction,
                    "aggregate": r.aggregate, "class_aggregate": r.class_aggregate,
                    "min_duration_s": r.min_duration_s, "classes": self.classes}
        if self.audio.allow_truncated:  # only then: results files of earlier runs still fit
            identity["allow_truncated"] = True
        return identity

    def predict(self, inputs: Iterable[str | Path], segments: bool = False
                ) -> Iterator[dict[str, Any]]:
        """One record per recording (input order); with ``segments``, each record also
        holds ``timeline``: a list of ``(start_s, leak_probability, top_class)``."""
        paths = find_recordings(inputs)
        self._distances = {}  # this run's, for flag_site_shift (a watcher runs for months)
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

    def flag_site_shift(self, records: list[dict[str, Any]]) -> dict[str, Any] | None:
        """Judge ``records`` (this predictor's, from :meth:`predict`) as one run: when their
        familiarity distances, together, lie farther from the training data than the
        validation recordings' (:func:`leakhunter.model.familiarity.site_shift`), every
        one judged with status ``ok`` becomes ``unfamiliar``. Returns the test (``shifted``,
        ``p``, ``recordings``), or ``None`` for a model without familiarity statistics."""
        if self.familiarity is None:
            return None
        judged = [r for r in records if r["path"] in self._distances]
        test = familiarity.site_shift(self.familiarity, np.array(
            [self._distances[r["path"]] for r in judged]).reshape(-1, 2))
        if test["shifted"]:
            for r in judged:
                if r["status"] == "ok":
                    r["status"] = "unfamiliar"
        return test

    def _score_waiting(self, waiting: list[tuple[str, dict[str, Any]]]
                       ) -> list[tuple[str, dict[str, Any]]]:
        """Score the features the workers sent, all recordings in one model call."""
        holders = [r for _, r in waiting if "mel" in r]
        if not holders:
            return waiting
        mels = [r.pop("mel") for r in holders]
        for result, scores in zip(holders, score_mels(self.model, mels, self.device,
                                                      self.familiarity)):
            result.update(scores)
        return waiting

    def _record(self, path: str, result: dict[str, Any], segments: bool) -> dict[str, Any]:
        meta = parse_name(path)
        d = self.rule
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
            self._distances[path] = distance
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


def _check_onnx_source(onnx: Path, model: Path) -> None:
    """Refuse a graph whose ``model_card.json`` names another source model than ``model``
    (by SHA-256): its scores would be judged by another model's rule."""
    from ..model.export import CARD_NAME

    try:
        card = json.loads((onnx.parent / CARD_NAME).read_text(encoding="utf-8"))
        source = card.get("source_sha256")
    except (OSError, ValueError, AttributeError):
        return  # a missing or unreadable card: the scorer says so
    mine = file_sha256(model)
    if source and source != mine:
        raise InputError(f"--onnx {onnx} was exported from {card.get('source_checkpoint')} "
                         f"(sha256 {str(source)[:12]}…), not from MODEL {model} (sha256 "
                         f"{mine[:12]}…): give the model it was exported from, or export "
                         f"MODEL again")


def _scorer(model_path: str, onnx: str | None, features_only: bool) -> Any:
    """This process's scorer: an ONNX session, ``(model, front end)``, or (``features_only``)
    the front end alone."""
    key = (model_path, onnx, features_only)
    if key not in _SCORERS:
        if onnx:
            from ..model.export import OnnxScorer

            _SCORERS[key] = OnnxScorer(onnx, threads=1 if _in_worker() else 0)
        else:
            model, card = load_model(model_path)
            front = LogMel(card.feature)
            _SCORERS[key] = front if features_only else (model, front, card.familiarity)
    return _SCORERS[key]


@torch.inference_mode()
def _score(scorer: Any, waves: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Per waveform: ``leak`` and ``classes`` of its segments, or (front end only) ``mel``,
    its float16 log-mel ``[S, M, F]``; all segments in one batch."""
    if isinstance(scorer, LogMel):
        return [{"mel": m} for m in extract(waves, scorer, dtype=torch.float16)]
    if isinstance(scorer, tuple):
        model, front, stats = scorer
        mels = extract(waves, front, dtype=torch.float16)  # rounded as datasets store them
        return score_mels(model, mels, torch.device("cpu"), stats)
    size, hop = scorer.segment_samples, scorer.card.feature.segment_hop
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
            read = waveform_pieces(path, feature, audio, BLOCK_S)
            duration, pieces = read.duration_s, read.pieces
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
            results[path] = {"status": exc.kind}
            continue
        # a truncated file kept (--allow-truncated) says so whatever else is true of it
        results[path]["status"] = ("truncated" if read.truncated else
                                   "padded" if assembler.padded else "ok")
    if batch:
        for (path, _), scores in zip(batch, _score(scorer, [w for _, w in batch])):
            results[path].update(scores)
    return [(p, results[p]) for p in paths]


def _in_worker() -> bool:
    return multiprocessing.parent_process() is not None


def predict(model: str | Path, inputs: Iterable[str | Path], **kwargs: Any
            ) -> list[dict[str, Any]]:
    """Decisions for ``inputs`` (files, folders, globs) as a list of records, judged as one
    run (:meth:`Predictor.flag_site_shift`); keyword arguments as :class:`Predictor` (and
    ``segments=True`` for timelines)."""
    segments = kwargs.pop("segments", False)
    predictor = Predictor(model, **kwargs)
    records = list(predictor.predict(inputs, segments=segments))
    predictor.flag_site_shift(records)
    return records

