"""The paper's MFCC baselines (Ma et al. 2025, Table 2): 16 MFCCs per long segment fed to
a random forest, an SVM or XGBoost.

The MFCCs come from leakhunter's own log-mel front end (the dataset's ``mel``), so the
baselines see exactly the segments and the spectra the CNN sees; they differ only in the
model. Each is a scikit-learn ``Pipeline(StandardScaler, model)`` with the paper's settings,
trained on the training segments, and scored per recording by
:func:`leakhunter.study.scoring.recording_metrics`, the rule every study model shares
(threshold chosen on validation, recordings decided by the vote of their segments).

XGBoost is an optional extra (``pip install 'leakhunter[baselines]'``), imported only when
``mfcc-xgboost`` runs; without it that baseline raises :class:`MissingExtra` and
:func:`available` says how to add it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..dataset.segments import SplitData
from ..errors import ConfigError, InputError, LeakhunterError
from ..runtime.parallel import default_workers
from .scoring import recording_metrics

log = logging.getLogger(__name__)

N_MFCC = 16  # MFCCs per frame, as the paper
BASELINES = ("mfcc-rf", "mfcc-svm", "mfcc-xgboost")
SVM_MAX_SEGMENTS = 20_000  # the SVM trains on a stratified subsample of at most this many
                           # segments: its fit grows faster than n^2 (one fit on overlapping
                           # classes: 6 s for 10,000 segments, 21 s for 20,000; calibrated,
                           # 6 fits, 82 s on 2 cores)
SVM_CACHE_MB = 500  # libsvm's kernel cache per fit (5 calibration fits run at once)
CHUNK_SEGMENTS = 65_536  # segments read at once from a split (about 125 MiB float32 at
                         # 32 mels x 15 frames), so memory stays bounded on any split
XGBOOST_LINE = "mfcc-xgboost needs xgboost: pip install 'leakhunter[baselines]'"


class MissingExtra(LeakhunterError):
    """A baseline needs an optional dependency that is not installed; the message is the
    one line that says how to install it."""


def mfcc(mel_db: np.ndarray, n_mfcc: int = N_MFCC) -> np.ndarray:
    """MFCCs of log-mel spectra: ``[..., M, F]`` dB -> float32 ``[..., n_mfcc, F]``.

    The orthonormal DCT-II over the mel axis, first ``n_mfcc`` coefficients, no liftering:
    exactly ``librosa.feature.mfcc(S=mel_db, n_mfcc=n_mfcc)`` (``dct_type=2``,
    ``norm="ortho"``, ``lifter=0``). Computed in float64 from any float input (float16
    dataset features included). Raises :class:`ConfigError` unless 1 <= n_mfcc <= M.
    """
    mel_db = np.asarray(mel_db)
    return np.matmul(_dct_basis(mel_db.shape[-2], n_mfcc),
                     mel_db.astype(np.float64)).astype(np.float32)


def segment_vectors(mel_db: np.ndarray, n_mfcc: int = N_MFCC) -> np.ndarray:
    """One feature vector per long segment: ``[S, M, F]`` log-mel dB -> float32
    ``[S, n_mfcc]``, each segment's MFCCs (:func:`mfcc`) averaged over its frames.

    The paper's baselines classify long segments, one vector each, as the CNN classifies
    one ``[M, F]`` input per long segment; averaging over the frames keeps the segment's
    spectral envelope and drops the frame order, which the classical models have no use
    for. The DCT is linear, so this is the DCT of the frame-averaged log-mel (computed that
    way: F times less work, the same numbers).
    """
    mel_db = np.asarray(mel_db)
    if mel_db.ndim != 3:
        raise InputError(f"segment log-mels must be [segments, mels, frames], got "
                         f"shape {mel_db.shape}")
    mean = mel_db.astype(np.float64).mean(axis=2)  # [S, M]
    return (mean @ _dct_basis(mel_db.shape[1], n_mfcc).T).astype(np.float32)


def split_vectors(data: SplitData, n_mfcc: int = N_MFCC,
                  chunk: int = CHUNK_SEGMENTS) -> np.ndarray:
    """:func:`segment_vectors` of every segment of a split, float32 ``[N, n_mfcc]``.

    Reads ``chunk`` segments at a time: slices of ``data.mel`` when preloaded (wherever it
    lives, CPU or GPU), else from the file with :meth:`SplitData.batch`.
    """
    parts = []
    for lo in range(0, data.segments, chunk):
        hi = min(lo + chunk, data.segments)
        if data.mel is not None:
            block = data.mel[lo:hi].float().cpu().numpy()
        else:
            block = data.batch(np.arange(lo, hi)).cpu().numpy()
        parts.append(segment_vectors(block, n_mfcc))
    if not parts:
        return np.zeros((0, n_mfcc), np.float32)
    return np.concatenate(parts)


def available(name: str) -> str | None:
    """None when model ``name`` can run here, else the one line saying how to add what it
    needs: only ``mfcc-xgboost`` needs an optional extra (xgboost); any other name,
    the study's CNNs included, gives None."""
    if name == "mfcc-xgboost":
        try:
            _xgboost()
        except MissingExtra as exc:
            return str(exc)
    return None


def make_classifier(name: str, seed: int) -> Any:
    """A new, unfitted scikit-learn ``Pipeline(StandardScaler, model)`` for baseline
    ``name``, with the paper's settings and ``seed``:

    * ``mfcc-rf``: ``RandomForestClassifier(n_estimators=500, min_samples_leaf=16)``;
    * ``mfcc-svm``: ``SVC(kernel="rbf", C=100)`` with Platt-scaled probabilities from a
      5-fold ``CalibratedClassifierCV(..., method="sigmoid", ensemble=False)`` (what
      ``SVC(probability=True)`` computes; that option is deprecated in scikit-learn 1.9);
    * ``mfcc-xgboost``: ``XGBClassifier(n_estimators=1000, max_depth=10,
      learning_rate=0.1, eval_metric="logloss")``.

    Each uses every core available (``n_jobs``). Raises :class:`ConfigError` for an
    unknown name and :class:`MissingExtra` for ``mfcc-xgboost`` without xgboost.
    """
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    _check_name(name)
    workers = default_workers()
    if name == "mfcc-rf":
        from sklearn.ensemble import RandomForestClassifier

        model = RandomForestClassifier(n_estimators=500, min_samples_leaf=16, n_jobs=workers,
                                       random_state=seed)
    elif name == "mfcc-svm":
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.svm import SVC

        svc = SVC(kernel="rbf", C=100, cache_size=SVM_CACHE_MB, random_state=seed)
        model = CalibratedClassifierCV(svc, method="sigmoid", cv=5, ensemble=False,
                                       n_jobs=min(workers, 5))
    else:
        model = _xgboost().XGBClassifier(n_estimators=1000, max_depth=10, learning_rate=0.1,
                                         n_jobs=workers, random_state=seed,
                                         eval_metric="logloss")
    return Pipeline([("scale", StandardScaler()), ("model", model)])


def run_baseline(name: str, train: SplitData, validation: SplitData, test: SplitData,
                 positive: Sequence[int], seed: int, *, vote_fraction: float = 0.5,
                 target_specificity: float | None = None) -> dict[str, float]:
    """Train baseline ``name`` on ``train``'s segments and score it on ``test``'s recordings.

    Segments are :func:`split_vectors`; a segment is a leak when its ``label`` is one of the
    class indices ``positive`` (as a recording by its ``file_label``). The model is fitted
    on all training segments (``mfcc-svm``: on a stratified random subsample of
    :data:`SVM_MAX_SEGMENTS` when there are more, logged), its leak probabilities of the
    validation and test segments then go to :func:`recording_metrics`, which chooses the
    threshold on validation (with ``vote_fraction``, ``target_specificity``) and returns
    the test recordings' :data:`~leakhunter.study.scoring.METRICS` and ``threshold``, as
    for every study model.

    Raises :class:`MissingExtra` (before any work) for ``mfcc-xgboost`` without xgboost,
    :class:`InputError` when the training segments hold one class only.
    """
    model = make_classifier(name, seed)
    x = split_vectors(train)
    y = np.isin(train.label, positive).astype(np.int64)
    if np.unique(y).size < 2:
        raise InputError(f"{name}: the training segments of {train.path} hold "
                         f"{'only leaks' if y.any() else 'no leaks'}; a classifier needs both")
    if name == "mfcc-svm" and len(y) > SVM_MAX_SEGMENTS:
        keep = stratified_subsample(y, SVM_MAX_SEGMENTS, seed)
        log.info("%s: fitting on a stratified random %d of %d training segments (an SVM's "
                 "fit grows faster than n^2)", name, len(keep), len(y))
        x, y = x[keep], y[keep]
    started = time.perf_counter()
    model.fit(x, y)
    log.info("%s: fitted on %d segments in %.1f s", name, len(y),
             time.perf_counter() - started)
    return recording_metrics(
        validation.file_index, _leak_probability(model, split_vectors(validation)),
        np.isin(validation.file_label, positive),
        test.file_index, _leak_probability(model, split_vectors(test)),
        np.isin(test.file_label, positive),
        vote_fraction=vote_fraction, target_specificity=target_specificity)


def stratified_subsample(y: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Sorted indices of a random ``size`` of ``y``'s items (all when fewer), each class
    kept in its share (rounded; at least one item of each class present)."""
    if len(y) <= size:
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    take = np.maximum(1, np.round(counts * size / len(y)).astype(np.int64))
    take[np.argmax(take)] -= take.sum() - size  # exactly ``size`` in all
    picked = [rng.choice(np.flatnonzero(y == c), n, replace=False)
              for c, n in zip(classes, take)]
    return np.sort(np.concatenate(picked))


def _leak_probability(model: Any, x: np.ndarray) -> np.ndarray:
    """Probability of class 1 (leak) per row of ``x``, float64 ``[N]``."""
    if len(x) == 0:
        return np.zeros(0)
    column = list(model.classes_).index(1)
    return model.predict_proba(x)[:, column].astype(np.float64)


def _dct_basis(n_mels: int, n_mfcc: int) -> np.ndarray:
    """Rows 0..n_mfcc-1 of the orthonormal DCT-II matrix of size ``n_mels``, float64
    ``[n_mfcc, n_mels]``: ``c[k] = sum_m x[m] cos(pi k (2m + 1) / (2 M))``, scaled by
    ``sqrt(1 / M)`` for k = 0 and ``sqrt(2 / M)`` otherwise (scipy's ``dct(norm="ortho")``).
    """
    if not 1 <= n_mfcc <= n_mels:
        raise ConfigError(f"n_mfcc must be between 1 and the {n_mels} mel bands, "
                          f"got {n_mfcc}")
    k = np.arange(n_mfcc)[:, None]
    m = np.arange(n_mels)[None, :]
    basis = np.cos(np.pi * k * (2 * m + 1) / (2 * n_mels)) * np.sqrt(2.0 / n_mels)
    basis[0] /= np.sqrt(2.0)
    return basis


def _xgboost() -> Any:
    """The ``xgboost`` module; :class:`MissingExtra` when it is not installed."""
    try:
        import xgboost
    except ImportError:
        raise MissingExtra(XGBOOST_LINE) from None
    return xgboost


def _check_name(name: str) -> None:
    if name not in BASELINES:
        raise ConfigError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
