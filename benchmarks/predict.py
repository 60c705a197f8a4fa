"""Benchmark: `leakhunter predict` speed in x real time, and memory for long recordings.

* Speed: seconds of audio judged per second of wall time, decoding included, on generated
  10 s recordings, with torch and with onnxruntime (the model exported by `export`).
  Medians of ``--repeats`` runs, the predictor's workers already started.
* ONNX front-end, in CPU time: the same recordings scored in this process by one
  single-threaded onnxruntime session (what each predict worker runs, one per core),
  decoding included, timed with ``time.process_time`` so that other jobs on a shared
  machine do not count; the exported graph (framing as Gather, DFT as one MatMul) beside
  the previous graph (DFT as a strided Conv1d, rebuilt here as the reference), interleaved,
  medians, as a ratio. ``x real time on N cores`` = N x the one-core figure: predict's
  workers share nothing.
* Memory: peak RSS of the whole `leakhunter predict` process tree (sampled every 20 ms)
  for one 1-hour recording against one 10-minute recording.

Targets on 2 CPU cores: >= 1000x real time; the 1-hour peak within 1.3x of the 10-minute.

    python benchmarks/predict.py [--recordings 300] [--repeats 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
from memory import peak_memory  # benchmarks/memory.py

from leakhunter.config import (
    ModelConfig,
    SynthConfig,
    TrainConfig,
)
from leakhunter.dataset.build import build_dataset
from leakhunter.decisions import predict as predict_module
from leakhunter.decisions.predict import Predictor
from leakhunter.model.card import load_model
from leakhunter.model.export import (
    OnnxFrontEnd,
    OnnxScorer,
    OnnxWrapper,
    _export_graph,
    export_onnx,
)
from leakhunter.recordings.synth.synth import synthesize
from leakhunter.training.train import train


class ConvFrontEnd(OnnxFrontEnd):
    """The reference: the previous export's front-end, framing + window + DFT as one
    strided Conv1d with the same basis."""

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        hop = int(self.index[1, 0] - self.index[0, 0]) if self.index.shape[0] > 1 else 1
        spec = F.conv1d(waveform.unsqueeze(1), self.basis_t.T[:, None], stride=hop)
        real, imag = spec.split(self.n_freq, dim=1)
        power = real.square() + imag.square()  # [B, n_freq, frames]
        return self.front_end.to_db(power.transpose(1, 2) @ self.front_end.mel_t)


def onnx_cpu_time(model: Path, graphs: dict[str, Path], folder: Path, repeats: int
                  ) -> dict[str, float]:
    """Median CPU seconds to score every recording in ``folder`` with each graph: one
    single-threaded session in this process, decoding included, graphs interleaved."""
    _, card = load_model(model)
    feature, audio = card.feature, card.audio
    paths = [str(p) for p in sorted(folder.rglob("*.wav"))]
    chunks = [paths[i:i + 8] for i in range(0, len(paths), 8)]  # as predict hands them out
    times: dict[str, list[float]] = {name: [] for name in graphs}
    for _ in range(repeats):
        for name, graph in graphs.items():
            # one thread, as each worker process runs it (predict's own cache of scorers)
            predict_module._SCORERS[(str(model), str(graph), False)] = OnnxScorer(graph,
                                                                               threads=1)
            start = time.process_time()
            for chunk in chunks:
                predict_module._score_chunk(chunk, str(model), str(graph), feature, audio)
            times[name].append(time.process_time() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def long_recording(path: Path, minutes: float) -> None:
    """A noise recording at 4096 Hz written in blocks (no minutes-long array in memory)."""
    rng = np.random.default_rng(0)
    with sf.SoundFile(str(path), "w", 4096, 1, "PCM_16") as fh:
        for _ in range(int(minutes)):
            fh.write((0.1 * rng.standard_normal(4096 * 60)).astype(np.float32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=300,
                        help="10 s recordings to judge (default: 300)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs each (default: 3)")
    parser.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    work = Path(args.out or tempfile.mkdtemp(prefix="leakhunter-bench-predict-"))
    model = work / "run" / "best.pt"
    if not model.exists():  # a small trained model: timing does not depend on accuracy
        synthesize(work / "train-rec", SynthConfig(count=60, seed=3), overwrite=True)
        build_dataset(work / "train-rec", work / "dataset", overwrite=True)
        train(work / "dataset", work / "run", TrainConfig(epochs=1, model=ModelConfig()),
              overwrite=True)
        export_onnx(model, work / "model.onnx")
        synthesize(work / "new", SynthConfig(count=args.recordings // 2, seed=4,
                                             out_of_water=0), overwrite=True)
        long_recording(work / "10min.wav", 10)
        long_recording(work / "60min.wav", 60)
    audio_s = sum(sf.info(str(p)).duration for p in (work / "new").rglob("*.wav"))

    print(f"{args.recordings} recordings, {audio_s / 60:.0f} min of audio (4096 Hz, 10 s)")
    for name, onnx in (("torch", None), ("onnxruntime", work / "model.onnx")):
        predictor = Predictor(model, onnx=onnx)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            records = list(predictor.predict([work / "new"]))
            times.append(time.perf_counter() - start)
        assert all(r["decision"] for r in records)
        t = statistics.median(times)
        print(f"predict with {name:<12} {t:6.2f} s  {audio_s / t:7.0f}x real time "
              f"(target >= 1000x)")
    model_obj, card = load_model(model)
    wrapper = OnnxWrapper(model_obj.float(), card.feature)
    wrapper.front_end.__class__ = ConvFrontEnd
    conv = work / "conv-front-end" / "model.onnx"
    conv.parent.mkdir(exist_ok=True)
    shutil.copy(work / "model_card.json", conv.parent / "model_card.json")
    _export_graph(wrapper.eval(), wrapper.front_end.front_end.cfg.segment_samples, conv)
    cpu = onnx_cpu_time(model, {"exported": work / "model.onnx", "conv1d": conv},
                        work / "new", args.repeats)
    for name, seconds in cpu.items():
        per_core = audio_s / seconds
        print(f"onnxruntime, {name:<9} front-end: {seconds:6.2f} CPU s, {per_core:6.0f}x real "
              f"time per core, {2 * per_core:6.0f}x on 2 cores (target >= 1000x)")
    print(f"exported / conv1d front-end: {cpu['conv1d'] / cpu['exported']:.3f}x the throughput")
    cli = [sys.executable, "-m", "leakhunter", "-q", "predict", str(model)]
    _, peak_10 = peak_memory([*cli, str(work / "10min.wav"), "--out", str(work / "a.csv")])
    wall_60, peak_60 = peak_memory([*cli, str(work / "60min.wav"), "--out",
                                    str(work / "b.csv")])
    print(f"peak memory (process tree): {peak_10:.0f} MiB for 10 min, {peak_60:.0f} MiB for "
          f"60 min: ratio {peak_60 / peak_10:.2f} (target <= 1.3); the hour took "
          f"{wall_60:.1f} s")
    if not args.out:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
