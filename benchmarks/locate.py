"""Benchmark: `leakhunter locate` accuracy on generated pairs, and its speed.

**Accuracy.** Pairs from :func:`~leakhunter.locate.synth_pairs.make_pair` in memory
(``PairSynthConfig(seed=S)`` for each of ``--seeds``, ``--pairs`` each: six materials,
spans 40-500 m, per-sensor SNR -12..+6 dB, 20 % without a leak, half with a pump or
traffic beyond one end; 20 s at 8,192 Hz), the true wave speed given
(``WaveSpeed(c, c, c, "given")``). The files' 16-bit rounding and ``read_pair``'s trend
removal are skipped here; the speed part goes through the files. Methods:

* ``leakhunter <weighting>``: :func:`~leakhunter.locate.estimate.locate_batch` with
  ``LocateConfig(weighting=...)``, pairs of one window batched 16 at a time as
  ``locate_jobs`` does; "(default)" marks ``LocateConfig()``'s. "Located": status
  ``located``.
* ``full xcorr`` (reference): the plain cross-correlation of the whole recordings (numpy
  FFT, zero-padded to twice their length), its peak within ``|tau| <= 1.1 D / c``
  (parabola through the highest sample), ``x = (D + c tau) / 2``.
* ``GCC-PHAT 1 s`` (reference): ``scipy.signal.csd`` with 1 s Hann windows at half
  overlap, weighted ``1 / |G_ab|``, inverse FFT, the peak as above. Where ``D / c`` exceeds
  0.5 s the window wraps round: that weakness is the reference's and is kept.

The references have no status of their own: "located" is a position strictly inside
(2 %, 98 %) of the span. Figures over leak pairs: median and 90th percentile of
``|x - x_true|`` in % of the span over the pairs with a position (leakhunter: ``located``
and ``outside``; the references: every pair), the share of *all* leak pairs located
within 2 % of the span (a pair not located is a miss); over no-leak pairs: the share
located. Overall per seed and the mean over seeds; by material group (metal: ductile
iron, cast iron, steel, copper; cement: asbestos cement; plastic: pvc, pe) and by SNR bin
(the lower of the two sensors') as means over seeds (per seed in ``--json``). For
leakhunter also the interval's coverage (share of located leak pairs whose true position
lies in ``[low_m, high_m]``) and its median width in % of the span.

**Speed** on ``--speed-pairs`` pairs written by ``synthesize_pairs`` (seed 100), 20 s at
8,192 Hz, medians of ``--repeats`` rounds, each round running every measurement once
(interleaved, so a busy spell of a shared machine falls on all alike):

* leakhunter end to end: ``locate_jobs(read_pairs(csv), LocateConfig(workers=W), cpu)``,
  what ``leakhunter locate --pairs`` runs: ``W`` worker processes each read and
  correlate their share of the pairs (one torch thread each); pool start included. The
  main process holds only the pairs list while these run, as the command's does (a
  parent holding every decoded pair makes every fork slower, ours and the reference's).
* reference: a straightforward per-pair scipy loop in one process: ``soundfile.read`` both
  files, the window leakhunter picks for the pair (``window_samples``), ``scipy.signal.csd``
  and ``scipy.signal.welch`` (Hann, half overlap), SCOT weighting (the default's) over all
  frequencies, ``irfft``, ``fftshift``, the peak within the physical range (parabola),
  the position. Also the same over a ``multiprocessing`` pool of 2 processes (pool start
  included). Their positions are compared with ours on the pairs we locate.
* correlation only (after the rounds above): the pairs decoded beforehand as tensors,
  ``locate_batch`` in this process over batches of ``BATCH["cpu"]`` pairs of one window;
  torch's default threads and one.
* CUDA (where ``torch.cuda.is_available()``, or ``--device cuda``): correlation only with
  the decoded pairs on the GPU once, tiled to ``--gpu-pairs`` pairs, batches of 256 of
  one window, one warm-up pass, synchronised; and ``locate_jobs`` on ``cuda`` end to end
  (the CUDA context and cuFFT plans already made by the warm-up).

Targets (pairs: SNR -12..+6 dB, spans 40-500 m, metal and plastic, 20 s at 8,192 Hz, true
speed given): >= 95 % of leak pairs within 2 % of the span and <= 10 % of no-leak pairs
``located`` (leakhunter's default, mean over seeds; seeds meeting it are counted);
end to end >= 5x the per-pair scipy reference on 2 cores (its 2-process run), decoding
included; >= 10,000 pairs/s correlation only on one H100/H200.

    python benchmarks/locate.py [--seeds 0,1,2] [--pairs 120] [--speed-pairs 256]
        [--workers 2] [--repeats 3] [--device auto|cpu|cuda] [--quick] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from scipy import fft as sfft
from scipy import signal

from leakhunter.config import WEIGHTINGS, LocateConfig, PairSynthConfig
from leakhunter.locate.estimate import LOCATED, locate_batch, window_samples
from leakhunter.locate.pair_audio import read_pair
from leakhunter.locate.pairing import read_pairs
from leakhunter.locate.run import BATCH, locate_jobs
from leakhunter.locate.synth_pairs import make_pair, synthesize_pairs
from leakhunter.locate.wave_speed import WaveSpeed
from leakhunter.runtime.log import setup_logging

GROUPS = {"ductile iron": "metal", "cast iron": "metal", "steel": "metal", "copper": "metal",
          "asbestos cement": "cement", "pvc": "plastic", "pe": "plastic"}
GROUP_NAMES = ("metal", "cement", "plastic")
SNR_BINS = ((-12.0, -6.0, "SNR [-12,-6)"), (-6.0, 0.0, "SNR [-6,0)"),
            (0.0, math.inf, "SNR [0,6]"))
EDGE = 0.02  # the references' "located": strictly inside (2 %, 98 %) of the span
WITHIN = 2.0  # % of the span
SEARCH = 1.1  # the references search |tau| <= this x D / c
SPEED_SEED = 100
FULL, PHAT1 = "full xcorr", "GCC-PHAT 1 s"


# --- the references -------------------------------------------------------------------------

def _peak(r: np.ndarray, lags: np.ndarray, limit: float) -> float:
    """The lag (samples) of the highest ``r`` within ``|lag| <= limit``, refined by the
    parabola through it and its neighbours."""
    allowed = np.flatnonzero(np.abs(lags) <= limit)
    i = int(allowed[np.argmax(r[allowed])])
    shift = 0.0
    if 0 < i < r.size - 1:
        left, mid, right = r[i - 1], r[i], r[i + 1]
        curvature = left - 2 * mid + right
        if curvature < 0:
            shift = float(np.clip(0.5 * (left - right) / curvature, -0.5, 0.5))
    return float(lags[i]) + shift


def full_xcorr(a: np.ndarray, b: np.ndarray, rate: float, span: float, c: float) -> float:
    """Position (m from A) by the plain cross-correlation of the whole recordings."""
    n = a.size
    nfft = sfft.next_fast_len(2 * n, real=True)
    r = np.fft.irfft(np.fft.rfft(a, nfft) * np.conj(np.fft.rfft(b, nfft)), nfft)
    limit = SEARCH * span / c * rate
    reach = min(int(math.ceil(limit)) + 1, n - 1)
    r = np.concatenate([r[-reach:], r[:reach + 1]])  # lags -reach .. reach
    tau = _peak(r, np.arange(-reach, reach + 1), limit) / rate
    return (span + c * tau) / 2


def gcc_phat(a: np.ndarray, b: np.ndarray, rate: float, span: float, c: float,
             window: int) -> float:
    """Position (m from A) by GCC-PHAT over Welch windows of ``window`` samples."""
    # scipy's csd(x, y) averages conj(X) Y: csd(b, a) is leakhunter's G_ab = E[A conj(B)]
    _, gab = signal.csd(b, a, rate, window="hann", nperseg=window, noverlap=window // 2)
    w = 1.0 / np.maximum(np.abs(gab), 1e-12 * np.abs(gab).max())
    r = np.fft.fftshift(np.fft.irfft(gab * w, n=window))
    tau = _peak(r, np.arange(window) - window // 2, SEARCH * span / c * rate) / rate
    return (span + c * tau) / 2


def scot(a: np.ndarray, b: np.ndarray, rate: float, span: float, c: float,
         window: int) -> float:
    """Position (m from A) by GCC-SCOT over Welch windows of ``window`` samples, the
    straightforward scipy way."""
    kw = dict(window="hann", nperseg=window, noverlap=window // 2)
    _, gab = signal.csd(b, a, rate, **kw)
    _, gaa = signal.welch(a, rate, **kw)
    _, gbb = signal.welch(b, rate, **kw)
    power = np.sqrt(gaa * gbb)
    w = 1.0 / np.maximum(power, 1e-12 * power.max())
    r = np.fft.fftshift(np.fft.irfft(gab * w, n=window))
    tau = _peak(r, np.arange(window) - window // 2, SEARCH * span / c * rate) / rate
    return (span + c * tau) / 2


def reference_pair(task: tuple[str, str, float, float]) -> float:
    """The per-pair scipy reference, decoding included: position (m from A)."""
    a_path, b_path, span, c = task
    a, rate = sf.read(a_path)
    b, _ = sf.read(b_path)
    window = window_samples(span, c, rate, a.size, LocateConfig())
    return scot(a, b, rate, span, c, window)


# --- accuracy -------------------------------------------------------------------------------

def _inside(x: float, span: float) -> bool:
    return EDGE * span < x < (1 - EDGE) * span


def ours(pairs: list, cfg: LocateConfig) -> list[dict[str, Any]]:
    """leakhunter's answer for each pair: batched by window, 16 at a time."""
    out: list[dict[str, Any] | None] = [None] * len(pairs)
    groups: dict[int, list[int]] = {}
    for i, p in enumerate(pairs):
        t = p.truth
        w = window_samples(t["distance_m"], t["wave_speed_m_s"], p.rate, p.a.size, cfg)
        groups.setdefault(w, []).append(i)
    for window, index in groups.items():
        for start in range(0, len(index), BATCH["cpu"]):
            chunk = index[start:start + BATCH["cpu"]]
            a = torch.from_numpy(np.stack([pairs[i].a for i in chunk]))
            b = torch.from_numpy(np.stack([pairs[i].b for i in chunk]))
            spans = [pairs[i].truth["distance_m"] for i in chunk]
            speeds = [_given(pairs[i].truth["wave_speed_m_s"]) for i in chunk]
            locs, _ = locate_batch(a, b, pairs[0].rate, spans, speeds, cfg, window)
            for i, loc in zip(chunk, locs):
                out[i] = {"position": loc.position_m, "located": loc.status == LOCATED,
                          "low": loc.low_m, "high": loc.high_m}
    return out  # type: ignore[return-value]


def _given(c: float) -> WaveSpeed:
    return WaveSpeed(c, c, c, "given")


class Pair:
    """A generated pair as the accuracy part needs it."""

    def __init__(self, cfg: PairSynthConfig, index: int):
        g = make_pair(cfg, index)
        self.a, self.b, self.truth, self.rate = g.a, g.b, g.truth, cfg.sample_rate


def accuracy_seed(seed: int, count: int, weightings: list[str]) -> list[dict[str, Any]]:
    """One record per pair: the truth and each method's answer."""
    cfg = PairSynthConfig(seed=seed, count=count)
    pairs = [Pair(cfg, i) for i in range(count)]
    answers = {f"leakhunter {w}": ours(pairs, LocateConfig(weighting=w)) for w in weightings}
    records = []
    for i, p in enumerate(pairs):
        t = p.truth
        span, c = t["distance_m"], t["wave_speed_m_s"]
        a, b = p.a.astype(np.float64), p.b.astype(np.float64)
        rec = {"seed": seed, "index": i, "leak": bool(t["leak"]), "span": span,
               "truth": t["leak_position_m"], "group": GROUPS[t["material"]],
               "snr": min(t["snr_a_db"], t["snr_b_db"]) if t["leak"] else None,
               "methods": {}}
        for name, ans in answers.items():
            rec["methods"][name] = ans[i]
        for name, x in ((FULL, full_xcorr(a, b, p.rate, span, c)),
                        (PHAT1, gcc_phat(a, b, p.rate, span, c, int(p.rate)))):
            rec["methods"][name] = {"position": x, "located": _inside(x, span),
                                    "low": None, "high": None}
        records.append(rec)
    return records


def figures(records: list[dict[str, Any]], method: str) -> dict[str, float]:
    """The accuracy figures of one method over ``records`` (nan where undefined)."""
    leak = [r for r in records if r["leak"]]
    clean = [r for r in records if not r["leak"]]
    errors, hits, covered, widths, located = [], 0, 0, [], 0
    for r in leak:
        m = r["methods"][method]
        if m["position"] is None:
            continue
        err = abs(m["position"] - r["truth"]) / r["span"] * 100
        errors.append(err)
        if m["located"]:
            located += 1
            hits += err <= WITHIN
            if m["low"] is not None:
                covered += m["low"] <= r["truth"] <= m["high"]
                widths.append((m["high"] - m["low"]) / r["span"] * 100)
    nan = float("nan")
    return {
        "leak_pairs": len(leak), "no_leak_pairs": len(clean),
        "median_pct": float(np.median(errors)) if errors else nan,
        "p90_pct": float(np.percentile(errors, 90)) if errors else nan,
        "within_2pct": hits / len(leak) if leak else nan,
        "leak_located": located / len(leak) if leak else nan,
        "no_leak_located": (sum(r["methods"][method]["located"] for r in clean) / len(clean)
                            if clean else nan),
        "coverage": covered / len(widths) if widths else nan,
        "width_pct": float(np.median(widths)) if widths else nan,
    }


def subsets(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out = {"all": records}
    for g in GROUP_NAMES:
        out[g] = [r for r in records if r["group"] == g]
    for lo, hi, name in SNR_BINS:  # no-leak pairs have no SNR: leak pairs only
        out[name] = [r for r in records if r["leak"] and lo <= r["snr"] < hi]
    return out


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.fmean(finite) if finite else float("nan")


def _pct(v: float, digits: int = 0) -> str:
    return "-" if math.isnan(v) else f"{100 * v:.{digits}f}"


def _num(v: float, digits: int = 2) -> str:
    return "-" if math.isnan(v) else f"{v:.{digits}f}"


def _num3(v: float) -> str:
    return _num(v, 3)


def _ratio(ours_: float, ref: float) -> str:
    if math.isnan(ours_) or math.isnan(ref) or ref == 0:
        return "-"
    return f"{ours_ / ref:.2f}x"


def accuracy(args: argparse.Namespace, default: str) -> dict[str, Any]:
    weightings = list(dict.fromkeys([default, *args.weightings]))
    methods = [f"leakhunter {w}" for w in weightings] + [FULL, PHAT1]
    label = {m: m + (" (default)" if m == f"leakhunter {default}" else "") for m in methods}
    per_seed: dict[int, dict[str, dict[str, dict[str, float]]]] = {}
    started = time.perf_counter()
    for seed in args.seeds:
        records = accuracy_seed(seed, args.pairs, weightings)
        per_seed[seed] = {name: {m: figures(recs, m) for m in methods}
                          for name, recs in subsets(records).items()}
        print(f"accuracy: seed {seed} done ({time.perf_counter() - started:.0f} s)",
              file=sys.stderr, flush=True)
    keys = list(next(iter(per_seed.values()))["all"][methods[0]])
    mean = {name: {m: {k: _mean([per_seed[s][name][m][k] for s in args.seeds]) for k in keys}
                   for m in methods} for name in per_seed[args.seeds[0]]}

    n = per_seed[args.seeds[0]]["all"][methods[0]]
    print(f"\n## Accuracy: {len(args.seeds)} seeds x {args.pairs} generated pairs "
          f"(about {n['leak_pairs']} leak, {n['no_leak_pairs']} no-leak per seed), "
          f"true wave speed given\n")
    print("| method | seed | median err % span | p90 err % span | within 2 % | "
          "leak located | no-leak located |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for m in methods:
        rows = [(str(s), per_seed[s]["all"][m]) for s in args.seeds] + [("mean", mean["all"][m])]
        for seed, f in rows:
            print(f"| {label[m]} | {seed} | {_num(f['median_pct'], 3)} | {_num(f['p90_pct'], 3)} | "
                  f"{_pct(f['within_2pct'], 1)} % | {_pct(f['leak_located'], 1)} % | "
                  f"{_pct(f['no_leak_located'], 1)} % |")

    d = mean["all"][f"leakhunter {default}"]
    for ref in (FULL, PHAT1):
        r = mean["all"][ref]
        print(f"\ndefault vs {ref} (means over seeds): within 2 % {_pct(d['within_2pct'], 1)} "
              f"vs {_pct(r['within_2pct'], 1)} % ({_ratio(d['within_2pct'], r['within_2pct'])});"
              f" median err {_num(d['median_pct'], 3)} vs {_num(r['median_pct'], 3)} % "
              f"({_ratio(d['median_pct'], r['median_pct'])}); p90 err {_num(d['p90_pct'], 3)} vs "
              f"{_num(r['p90_pct'], 3)} % ({_ratio(d['p90_pct'], r['p90_pct'])}); no-leak located "
              f"{_pct(d['no_leak_located'], 1)} vs {_pct(r['no_leak_located'], 1)} %")

    columns = list(GROUP_NAMES) + [name for _, _, name in SNR_BINS]
    counts = {c: sum(per_seed[s][c][methods[0]]["leak_pairs"] for s in args.seeds)
              for c in columns}
    print(f"\nBy material group and SNR bin (lower sensor's SNR), means over seeds; leak pairs "
          f"in all seeds: {', '.join(f'{c} {counts[c]}' for c in columns)}")
    for key, title, fmt in (("within_2pct", "within 2 % of the span, % (min-max over seeds)",
                             None),
                            ("median_pct", "median |error|, % of the span", _num3),
                            ("p90_pct", "90th percentile |error|, % of the span", _num3)):
        print(f"\n{title}\n")
        print("| method | " + " | ".join(columns) + " |")
        print("| --- |" + " ---: |" * len(columns))
        for m in methods:
            cells = []
            for c in columns:
                if fmt is None:
                    vals = [per_seed[s][c][m][key] for s in args.seeds]
                    vals = [v for v in vals if not math.isnan(v)]
                    cells.append(f"{_pct(mean[c][m][key])} ({_pct(min(vals))}-"
                                 f"{_pct(max(vals))})" if vals else "-")
                else:
                    cells.append(fmt(mean[c][m][key]))
            print(f"| {label[m]} | " + " | ".join(cells) + " |")
    print("\nno-leak pairs located, % (mean over seeds)\n")
    print("| method | all | " + " | ".join(GROUP_NAMES) + " |")
    print("| --- |" + " ---: |" * (1 + len(GROUP_NAMES)))
    for m in methods:
        print(f"| {label[m]} | " + " | ".join(_pct(mean[c][m]["no_leak_located"], 1)
                                               for c in ("all", *GROUP_NAMES)) + " |")

    print("\nleakhunter's intervals: coverage of the true position (located leak pairs) and "
          "median width, % of the span\n")
    print("| method | " + " | ".join(f"seed {s}" for s in args.seeds) + " | mean |")
    print("| --- |" + " ---: |" * (len(args.seeds) + 1))
    for m in methods[:len(weightings)]:
        cells = [f"{_pct(per_seed[s]['all'][m]['coverage'], 1)} % / "
                 f"{_num(per_seed[s]['all'][m]['width_pct'])}" for s in args.seeds]
        cells.append(f"{_pct(mean['all'][m]['coverage'], 1)} % / "
                     f"{_num(mean['all'][m]['width_pct'])}")
        print(f"| {label[m]} | " + " | ".join(cells) + " |")

    name = f"leakhunter {default}"
    hit = [per_seed[s]["all"][name]["within_2pct"] for s in args.seeds]
    fp = [per_seed[s]["all"][name]["no_leak_located"] for s in args.seeds]
    ok1, ok2 = d["within_2pct"] >= 0.95, d["no_leak_located"] <= 0.10
    print(f"\ntarget: >= 95 % of leak pairs within 2 % of the span (default, mean over seeds): "
          f"{_pct(d['within_2pct'], 1)} % -> {'PASS' if ok1 else 'FAIL'} "
          f"({sum(h >= 0.95 for h in hit)} of {len(hit)} seeds)")
    print(f"target: <= 10 % of no-leak pairs located (default, mean over seeds): "
          f"{_pct(d['no_leak_located'], 1)} % -> {'PASS' if ok2 else 'FAIL'} "
          f"({sum(f <= 0.10 for f in fp)} of {len(fp)} seeds)")
    return {"per_seed": {str(s): v for s, v in per_seed.items()}, "mean": mean,
            "default": name, "seconds": time.perf_counter() - started}


# --- speed ----------------------------------------------------------------------------------

@contextmanager
def _threads(n: int) -> Iterator[None]:
    """torch's intra-op threads in this process set to ``n`` (0: left as they are)."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _timed(runs: dict[str, Callable[[], Any]], repeats: int) -> tuple[dict[str, float],
                                                                     dict[str, Any]]:
    """Median seconds of each run and its last result; the runs interleaved, one of each
    per round, so that a busy spell of the machine falls on all of them alike."""
    times: dict[str, list[float]] = {k: [] for k in runs}
    results: dict[str, Any] = {}
    for _ in range(repeats):
        for name, fn in runs.items():
            started = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - started)
    return {k: statistics.median(v) for k, v in times.items()}, results


def _reference_pool(tasks: list, processes: int) -> list[float]:
    ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with ctx.Pool(processes) as pool:
        return pool.map(reference_pair, tasks, chunksize=1)


def _batches(decoded: list, jobs: list, cfg: LocateConfig, size: int,
             device: torch.device, total: int | None = None) -> list[tuple]:
    """Batches ``(a, b, rate, spans, speeds, window)`` of up to ``size`` pairs of one
    window, on ``device``; ``total``: tile the pairs (in order) to that many first."""
    order = list(range(len(jobs)))
    if total is not None:
        order = [order[k % len(order)] for k in range(total)]
    groups: dict[int, list[int]] = {}
    for i in order:
        audio, job = decoded[i], jobs[i]
        w = window_samples(job.distance_m, job.speed.low, audio.rate, audio.a.size, cfg)
        groups.setdefault(w, []).append(i)
    out = []
    for window, index in groups.items():
        for start in range(0, len(index), size):
            chunk = index[start:start + size]
            a = torch.from_numpy(np.stack([decoded[i].a for i in chunk])).to(device)
            b = torch.from_numpy(np.stack([decoded[i].b for i in chunk])).to(device)
            out.append((a, b, decoded[chunk[0]].rate, [jobs[i].distance_m for i in chunk],
                        [jobs[i].speed for i in chunk], window))
    return out


def _correlate(batches: list[tuple], cfg: LocateConfig, device: torch.device) -> int:
    n = 0
    for a, b, rate, spans, speeds, window in batches:
        locate_batch(a, b, rate, spans, speeds, cfg, window)
        n += len(spans)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return n


def speed(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    cfg = LocateConfig(workers=args.workers)
    threads = torch.get_num_threads()
    print(f"\n## Speed: {args.speed_pairs} generated pairs, 20 s at 8,192 Hz, 16-bit WAV, "
          f"medians of {args.repeats} interleaved rounds; {args.workers} workers\n",
          flush=True)
    summary = synthesize_pairs(work / "pairs", PairSynthConfig(seed=SPEED_SEED,
                                                               count=args.speed_pairs))
    jobs = read_pairs(summary.pairs_csv)
    n = len(jobs)
    tasks = [(str(j.a), str(j.b), j.distance_m, j.speed.speed) for j in jobs]
    cpu = torch.device("cpu")
    runs = {"ref_1proc": lambda: [reference_pair(t) for t in tasks],
            "ref_2proc": lambda: _reference_pool(tasks, 2),
            "ours_e2e": lambda: locate_jobs(jobs, cfg, cpu)}
    seconds, results = _timed(runs, args.repeats)
    # correlation only, afterwards: the decoded pairs would weigh on every fork above
    decoded = [read_pair(j.a, j.b, cfg.sample_rate) for j in jobs]
    batches = _batches(decoded, jobs, cfg, BATCH["cpu"], cpu)

    def corr(n_threads: int) -> Callable[[], Any]:
        def run() -> Any:
            with _threads(n_threads):
                return _correlate(batches, cfg, cpu)
        return run

    corr_seconds, _ = _timed({"ours_corr_cpu": corr(0), "ours_corr_cpu_1thread": corr(1)},
                             args.repeats)
    seconds.update(corr_seconds)
    figs: dict[str, Any] = {k: n / v for k, v in seconds.items()}
    rows, ref = results["ours_e2e"], results["ref_1proc"]
    located = [i for i, r in enumerate(rows) if r["status"] == LOCATED]
    diff = [abs(float(rows[i]["position_m"]) - ref[i]) for i in located]
    figs.update(pairs=n, located=len(located), torch_threads=threads,
                agreement_median_m=float(np.median(diff)) if diff else float("nan"),
                agreement_p90_m=float(np.percentile(diff, 90)) if diff else float("nan"))
    r1, r2 = figs["ref_1proc"], figs["ref_2proc"]
    print("| what | pairs/s | ratio |")
    print("| --- | ---: | --- |")
    print(f"| scipy per-pair reference, 1 process | {r1:.1f} | 1 |")
    print(f"| scipy per-pair reference, pool of 2 processes | {r2:.1f} | "
          f"{r2 / r1:.2f}x the 1-process reference |")
    print(f"| leakhunter end to end, cpu, {args.workers} workers | {figs['ours_e2e']:.1f} | "
          f"{figs['ours_e2e'] / r1:.2f}x ref 1 process; "
          f"{figs['ours_e2e'] / r2:.2f}x ref 2 processes |")
    for key, what in (("ours_corr_cpu", f"{threads} torch threads"),
                      ("ours_corr_cpu_1thread", "1 torch thread")):
        print(f"| leakhunter correlation only, cpu, batches of {BATCH['cpu']}, {what} | "
              f"{figs[key]:.1f} | {figs[key] / r1:.2f}x ref 1 process (which decodes too) |")
    print(f"\nreference vs leakhunter positions on the {len(located)} of {n} pairs leakhunter "
          f"locates: median |difference| {_num(figs['agreement_median_m'], 3)} m, "
          f"90th percentile {_num(figs['agreement_p90_m'], 3)} m")
    ok = figs["ours_e2e"] / r2 >= 5
    print(f"target: end to end >= 5x the scipy reference on 2 cores (2 processes), decoding "
          f"included: {figs['ours_e2e'] / r2:.2f}x -> {'PASS' if ok else 'FAIL'}")

    want_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    if not want_cuda:
        why = "skipped (--device cpu)" if args.device == "cpu" else "no GPU here"
        print(f"\nCUDA figures (correlation only >= 10,000 pairs/s on one H100/H200, end to "
              f"end) need a GPU: {why}.")
        return figs
    figs.update(cuda(args, cfg, jobs, decoded, rows, figs))
    return figs


def cuda(args: argparse.Namespace, cfg: LocateConfig, jobs: list, decoded: list,
         cpu_rows: list[dict[str, Any]], cpu_figs: dict[str, Any]) -> dict[str, Any]:
    """Correlation only and end to end on the GPU, beside the CPU's figures."""
    gpu, n = torch.device("cuda"), len(jobs)
    batches = _batches(decoded, jobs, cfg, BATCH["cuda"], gpu, total=args.gpu_pairs)
    _correlate(batches, cfg, gpu)  # warm-up: CUDA context, cuFFT plans, the allocator
    seconds, results = _timed({"corr": lambda: _correlate(batches, cfg, gpu),
                               "e2e": lambda: locate_jobs(jobs, cfg, gpu)}, args.repeats)
    total, gpu_rows = results["corr"], results["e2e"]
    same = sum(r["status"] == g["status"] for r, g in zip(cpu_rows, gpu_rows))
    figs = {"gpu": torch.cuda.get_device_name(gpu), "gpu_corr": total / seconds["corr"],
            "gpu_e2e": n / seconds["e2e"], "gpu_status_agree": same / n,
            "gpu_batches": len(batches)}
    print(f"\n{figs['gpu']} ({len(batches)} batches of up to {BATCH['cuda']} pairs of one "
          f"window):\n")
    print("| what | pairs/s | ratio |")
    print("| --- | ---: | --- |")
    print(f"| correlation only, cuda, {total} pairs (the {n} tiled) | {figs['gpu_corr']:.0f} | "
          f"{figs['gpu_corr'] / cpu_figs['ours_corr_cpu']:.1f}x correlation only on the cpu |")
    print(f"| end to end, cuda, {args.workers} workers decoding | {figs['gpu_e2e']:.1f} | "
          f"{figs['gpu_e2e'] / cpu_figs['ours_e2e']:.2f}x end to end on the cpu; "
          f"{figs['gpu_e2e'] / cpu_figs['ref_2proc']:.2f}x ref 2 processes |")
    print(f"statuses cuda vs cpu end to end: {same} of {n} the same")
    ok = figs["gpu_corr"] >= 10_000
    print(f"target: correlation only >= 10,000 pairs/s on one H100/H200: "
          f"{figs['gpu_corr']:.0f} -> {'PASS' if ok else 'FAIL'}")
    return figs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="pair seeds (default: 0,1,2)")
    parser.add_argument("--pairs", type=int, default=120, help="pairs per seed (default: 120)")
    parser.add_argument("--weightings", default=",".join(WEIGHTINGS),
                        help=f"leakhunter weightings to compare (default: "
                             f"{','.join(WEIGHTINGS)}; the default's is always run)")
    parser.add_argument("--speed-pairs", type=int, default=256,
                        help="pairs written for the speed part (default: 256)")
    parser.add_argument("--workers", type=int, default=2,
                        help="locate's decoding workers (default: 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (default: 3)")
    parser.add_argument("--gpu-pairs", type=int, default=4096,
                        help="pairs correlated per timed pass on the GPU (default: 4096)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="cuda: require the CUDA figures; cpu: skip them (default: auto)")
    parser.add_argument("--skip", choices=("accuracy", "speed"), default=None,
                        help="leave one part out")
    parser.add_argument("--quick", action="store_true",
                        help="1 seed, 40 pairs, 16 speed pairs, 1 repeat, 1024 GPU pairs")
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.pairs, args.speed_pairs, args.repeats = "0", 40, 16, 1
        args.gpu_pairs = 1024
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.weightings = [w.strip() for w in args.weightings.split(",") if w.strip()]
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no GPU")
    setup_logging(quiet=True)
    started = time.perf_counter()
    out: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    if args.skip != "accuracy":
        out["accuracy"] = accuracy(args, LocateConfig().weighting)
    if args.skip != "speed":
        with tempfile.TemporaryDirectory() as tmp:
            out["speed"] = speed(args, Path(tmp))
    out["seconds"] = time.perf_counter() - started
    print(f"\n(benchmark took {out['seconds']:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=float) + "\n")


if __name__ == "__main__":
    sys.exit(main())
