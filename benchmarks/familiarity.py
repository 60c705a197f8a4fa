"""Measurement: which familiarity score tells recordings unlike the training data apart.

For a trained model and its dataset, each candidate score is fitted on TRAINING segments
exactly as ``train`` fits the chosen one, a recording is flagged when fewer than 1 % of the
VALIDATION recordings are as far (leakhunter's rule), and the scores are applied to folders
of recordings: fresh recordings of the training site (should be familiar: at most 5 %
flagged), and recordings of other sites (should be flagged). Candidates, all per segment
and averaged per recording:

* ``mahalanobis-embedding``: Mahalanobis distance of the penultimate embedding to the
  nearest class mean, one shared covariance (what leakhunter stores);
* ``mahalanobis-input``: the same on the segment's mean and spread of each mel band (the
  input, before the network);
* ``combined``: the larger of the two familiarity tail shares' complements, i.e. flagged
  when either flags;
* ``energy``: minus the log-sum-exp of the class logits;
* ``max-softmax``: minus the highest class probability.

Prints, per score: the share of VALIDATION / each folder's recordings flagged, and the
ROC-AUC of telling the first folder (familiar) from the others. Then the cost: `predict`'s
model call (:func:`leakhunter.model.scoring.score_mels`) on the familiar folder's segments with
the stored statistics against the same call without them, medians of 5 runs.

    python benchmarks/familiarity.py MODEL DATASET_DIR FAMILIAR_DIR OTHER_DIR [OTHER_DIR...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from leakhunter.config import AudioConfig, FeatureConfig
from leakhunter.dataset.segments import load_split
from leakhunter.dataset.store import SPLIT_FILES
from leakhunter.errors import AudioError
from leakhunter.model import familiarity
from leakhunter.model.card import load_model
from leakhunter.model.scoring import score_mels
from leakhunter.recordings.audio import gain_too_low, load_recording, pad_to_segment, parse_name
from leakhunter.recordings.features import LogMel, extract
from leakhunter.recordings.files import find_recordings


@torch.no_grad()
def _scores(model, mel: torch.Tensor, fits: dict) -> dict[str, np.ndarray]:
    """Per-segment scores (higher = less familiar) of float32 log-mel ``[N, M, F]``."""
    out = {k: [] for k in ("mahalanobis-embedding", "mahalanobis-input", "energy",
                           "max-softmax")}
    for lo in range(0, len(mel), 512):
        x = mel[lo:lo + 512]
        emb = model.embed(x)
        logits = model.class_logits(model.from_embedding(emb)).double()
        out["mahalanobis-embedding"].append(familiarity.mahalanobis(fits["emb"], emb))
        out["mahalanobis-input"].append(familiarity.mahalanobis(
            fits["inp"], familiarity.input_features(x)))
        out["energy"].append(-torch.logsumexp(logits, dim=1))
        out["max-softmax"].append(-torch.softmax(logits, dim=1).max(dim=1).values)
    return {k: torch.cat(v).numpy() for k, v in out.items()}


def _share(ref: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Share of the reference recordings at least as far as each of ``d``."""
    ref = np.sort(ref)
    return (ref.size - np.searchsorted(ref, d, side="left")) / ref.size


def _per_recording(seg: dict[str, np.ndarray], counts: list[int]) -> dict[str, np.ndarray]:
    bounds = np.cumsum(counts)[:-1]
    return {k: np.array([p.mean() for p in np.split(v, bounds)]) for k, v in seg.items()}


def _folder(path: str, feature: FeatureConfig, audio: AudioConfig) -> tuple[torch.Tensor,
                                                                             list[int]]:
    front, waves = LogMel(feature), []
    for f in find_recordings([path]):
        if gain_too_low(parse_name(f), audio):
            continue  # out of water: predict does not judge them
        try:
            waves.append(pad_to_segment(load_recording(f, feature, audio).waveform,
                                        feature)[0])
        except AudioError:
            continue  # out of water, silence: predict does not judge them either
    mels = extract(waves, front, dtype=torch.float16)  # rounded as datasets store them
    return torch.from_numpy(np.concatenate(mels)).float(), [len(m) for m in mels]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("dataset")
    ap.add_argument("folders", nargs="+", help="the familiar folder first, then others")
    args = ap.parse_args()
    torch.manual_seed(0)
    model, card = load_model(args.model)
    feature, audio = card.feature, card.audio
    train = load_split(Path(args.dataset) / SPLIT_FILES["TRAINING"])
    val = load_split(Path(args.dataset) / SPLIT_FILES["VALIDATION"])
    pick = np.sort(np.random.default_rng([0, 7]).choice(
        train.segments, min(train.segments, familiarity.MAX_FIT_SEGMENTS), replace=False))
    x = train.batch(pick)
    with torch.no_grad():
        emb = model.embed(x).double()
    labels = torch.from_numpy(train.label[pick])
    fits = {"emb": familiarity.fit_part(emb, labels),
            "inp": familiarity.fit_part(familiarity.input_features(x), labels)}
    val_x = val.batch(np.arange(val.segments))
    ref = _per_recording(_scores(model, val_x, fits),
                         list(np.bincount(val.file_index, minlength=val.recordings)))
    groups = {"VALIDATION": ref}
    for folder in args.folders:
        mel, counts = _folder(folder, feature, audio)
        groups[Path(folder).name] = _per_recording(_scores(model, mel, fits), counts)
    names = list(groups)
    methods = [*ref, "combined"]
    print(f"{'score':<24}" + "".join(f"{n[:14]:>16}" for n in names) + f"{'ROC-AUC':>10}")
    for method in methods:
        flagged, scored = {}, {}
        for n in names:
            if method == "combined":
                share = np.minimum(*[_share(ref[m], groups[n][m])
                                     for m in ("mahalanobis-embedding", "mahalanobis-input")])
                scored[n] = -share
            else:
                share = _share(ref[method], groups[n][method])
                scored[n] = groups[n][method]
            flagged[n] = share < 0.01  # leakhunter's rule
        familiar, others = scored[names[1]], np.concatenate([scored[n] for n in names[2:]])
        auc = roc_auc_score(np.r_[np.zeros(len(familiar)), np.ones(len(others))],
                            np.r_[familiar, others])
        print(f"{method:<24}" + "".join(
            f"{int(flagged[n].sum()):>7}/{len(flagged[n]):<4}{flagged[n].mean():>5.0%}"
            for n in names) + f"{auc:>10.3f}")
    if card.familiarity is not None:
        _speed(model, card.familiarity, _folder(args.folders[0], feature, audio)[0])


def _speed(model, stats: dict, mel: torch.Tensor) -> None:
    import statistics
    import time

    mels = [mel.half().numpy()]
    cpu = torch.device("cpu")

    def timed(with_stats: bool) -> float:
        runs = []
        for _ in range(5):
            t0 = time.perf_counter()
            score_mels(model, mels, cpu, stats if with_stats else None)
            runs.append(time.perf_counter() - t0)
        return statistics.median(runs)

    timed(True)  # warm-up
    plain, familiar = timed(False), timed(True)
    print(f"predict's model call on {len(mel)} segments (CPU, {torch.get_num_threads()} "
          f"threads): {familiar:.3f} s with familiarity, {plain:.3f} s without: "
          f"{familiar / plain:.2f}x")


if __name__ == "__main__":
    main()
