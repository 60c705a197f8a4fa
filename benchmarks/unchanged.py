"""Proof that a change of structure left behaviour alone: record outputs, then compare.

Runs leakhunter through its command line only (so the same script serves any version of
the package), on fixed seeds, into OUT_DIR:

* ``leakhunter demo`` (small: 30 recordings per label, 3 epochs, no time budget, CPU):
  the dataset's three split files, ``build_report.json``, ``best.pt`` (weights and
  card), ``metrics.csv``, the evaluation's ``report.json`` and ``predictions.csv``, the
  calibrated model's, the fresh recordings' ``predictions.csv`` and segment timeline, the
  survey report's embedded data, the ONNX model card;
* ``leakhunter predict`` on the five real hydrophone recordings (``../shared/
  real-hydrophone``, when present), with the torch model and with the ONNX model;
* the ONNX graph's outputs on 512 seeded random segments and on every segment of the real
  recordings, computed with onnxruntime directly.

Each output becomes a fingerprint (JSON): numbers and strings exactly as written, HDF5
datasets as SHA-256 of their bytes, tensors likewise; timestamps, timings and the
leakhunter version are left out (they differ between any two runs). ``compare`` prints
every difference and exits 1 when there is one::

    python benchmarks/unchanged.py record /tmp/lh-unchanged && \\
        cp /tmp/lh-unchanged/fingerprint.json before.json
    # ... change the code ...
    python benchmarks/unchanged.py record /tmp/lh-unchanged && \\
        python benchmarks/unchanged.py compare before.json /tmp/lh-unchanged/fingerprint.json

Record both into the same OUT_DIR: paths inside the outputs are kept, only OUT_DIR itself
is replaced by ``<OUT>``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np

REAL = Path(__file__).resolve().parents[2] / "shared" / "real-hydrophone"
VOLATILE = {"created", "written", "timings", "timings_s", "total_s", "inference_s",
            "speed_x_realtime", "elapsed_s", "epoch_s", "segments_per_s", "leakhunter_version",
            "calibrated_with", "gpu_memory_peak_gib", "generated", "generated_at", "bytes"}
"""Keys whose values differ between any two runs (clock, speed, version)."""


def leakhunter(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "leakhunter", "-q", *args], check=True)


def record(out: Path) -> Path:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    demo = out / "demo"
    leakhunter("demo", "--out", str(demo), "--count", "30", "--fresh", "8", "--epochs", "3",
               "--time-budget", "0", "--seed", "0", "--device", "cpu")
    model, onnx = demo / "run" / "best.pt", demo / "export" / "model.onnx"
    real = sorted(REAL.glob("*.wav")) if REAL.is_dir() else []
    if real:
        leakhunter("predict", str(model), *map(str, real), "--out", str(out / "real.csv"),
                   "--segments", "--workers", "1", "--device", "cpu")
        leakhunter("predict", str(model), *map(str, real), "--onnx", str(onnx), "--out",
                   str(out / "real-onnx.csv"), "--workers", "1")
    found = {}
    for path in sorted(demo.rglob("*")):
        if path.is_file() and path.suffix.lower() in (".h5", ".json", ".csv", ".pt"):
            found[str(path.relative_to(out))] = fingerprint(path)
    for name in ("real.csv", "real_segments.csv", "real-onnx.csv"):
        if (out / name).exists():
            found[name] = fingerprint(out / name)
    found["report.html data"] = report_data(demo / "report.html")
    found["onnx outputs"] = onnx_outputs(onnx, real)
    text = json.dumps(found, indent=1, sort_keys=True).replace(str(out.resolve()), "<OUT>")
    text = text.replace(str(out), "<OUT>")
    target = out / "fingerprint.json"
    target.write_text(text + "\n", encoding="utf-8")
    return target


def clean(value: Any) -> Any:
    """``value`` without the keys of :data:`VOLATILE`, recursively."""
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def digest(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    return f"{array.dtype}{list(array.shape)}:" + hashlib.sha256(array.tobytes()).hexdigest()


def fingerprint(path: Path) -> Any:
    suffix = path.suffix.lower()
    if suffix == ".json":
        return clean(json.loads(path.read_text(encoding="utf-8")))
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        return [clean(r) for r in rows]
    if suffix == ".h5":
        out: dict[str, Any] = {}
        with h5py.File(path, "r") as h5:
            out["attrs"] = clean({k: _attr(v) for k, v in h5.attrs.items()})

            def visit(name: str, obj: Any) -> None:
                if isinstance(obj, h5py.Dataset):
                    data = obj.asstr()[()] if obj.dtype.kind == "O" else obj[()]
                    out[name] = digest(np.asarray(data).astype(str)) if obj.dtype.kind == "O" \
                        else digest(data)
            h5.visititems(visit)
        return out
    if suffix == ".pt":
        import torch

        state = torch.load(path, map_location="cpu", weights_only=True)
        return clean(_tensors(state))
    raise ValueError(path)


def _attr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value.item() if isinstance(value, np.generic) else value


def _tensors(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return digest(value.detach().cpu().numpy())
    if isinstance(value, dict):
        return {str(k): _tensors(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_tensors(v) for v in value]
    return value


def report_data(path: Path) -> Any:
    """The survey report's embedded JSON document (its timestamps left out)."""
    html = path.read_text(encoding="utf-8")
    found = re.search(r'<script type="application/json" id="survey-data">(.*?)</script>', html,
                      re.S)
    if not found:
        return {"sha256": hashlib.sha256(html.encode()).hexdigest()}
    data = clean(json.loads(found.group(1).replace("<\\/", "</")))
    for item in data.get("media", {}).values():  # Ogg streams carry a random serial number:
        if isinstance(item, dict) and item.get("audio"):  # compare the decoded samples
            item["audio"] = _decoded(item["audio"])
    return data


def _decoded(uri: str) -> str:
    import base64
    import io

    import soundfile as sf

    samples, rate = sf.read(io.BytesIO(base64.b64decode(uri.split(",", 1)[-1])),
                            dtype="float32")
    return f"{rate} Hz " + digest(samples)


def onnx_outputs(onnx: Path, real: list[Path]) -> dict[str, Any]:
    """Digests of the graph's two outputs on seeded random segments and on the real
    recordings' segments (the card's sample rate and segment grid; soundfile + soxr)."""
    import onnxruntime as ort

    card = json.loads((onnx.parent / "model_card.json").read_text(encoding="utf-8"))
    size, hop = card["segment_samples"], card["segment_hop"]
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    batches = {"random": (rng.standard_normal((512, size)) *
                          np.geomspace(1e-4, 0.5, 512)[:, None]).astype(np.float32)}
    if real:
        import soundfile as sf
        import soxr

        for path in real:
            wave, rate = sf.read(str(path), dtype="float32", always_2d=True)
            wave = soxr.resample(wave.mean(axis=1), rate, card["sample_rate"])
            batches[path.name] = np.ascontiguousarray(
                np.lib.stride_tricks.sliding_window_view(wave, size)[::hop], np.float32)
    out = {}
    for name, x in batches.items():
        probs, leak = session.run(["class_probabilities", "leak_probability"],
                                  {"waveform": x})
        out[name] = {"class_probabilities": digest(probs), "leak_probability": digest(leak),
                     "leak_mean": float(leak.mean())}
    return out


def compare(before: Path, after: Path) -> int:
    a = json.loads(before.read_text(encoding="utf-8"))
    b = json.loads(after.read_text(encoding="utf-8"))
    differences: list[str] = []
    _diff(a, b, "", differences)
    for line in differences[:200]:
        print(line)
    if len(differences) > 200:
        print(f"... and {len(differences) - 200} more")
    files = len(a)
    print(f"{files} outputs compared: " + ("identical" if not differences else
                                             f"{len(differences)} difference(s)"))
    return 1 if differences else 0


def _diff(a: Any, b: Any, where: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a:
                out.append(f"{where}/{key}: only after: {_short(b[key])}")
            elif key not in b:
                out.append(f"{where}/{key}: only before: {_short(a[key])}")
            else:
                _diff(a[key], b[key], f"{where}/{key}", out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            _diff(x, y, f"{where}[{i}]", out)
    elif a != b:
        out.append(f"{where}: {_short(a)} -> {_short(b)}")


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 120 else text[:117] + "..."


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    r = sub.add_parser("record", help="run leakhunter and write OUT_DIR/fingerprint.json")
    r.add_argument("out", type=Path, metavar="OUT_DIR")
    c = sub.add_parser("compare", help="print the differences of two fingerprints")
    c.add_argument("before", type=Path)
    c.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.what == "record":
        print(f"fingerprint written to {record(args.out)}")
        return 0
    return compare(args.before, args.after)


if __name__ == "__main__":
    sys.exit(main())
