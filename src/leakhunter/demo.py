"""`leakhunter demo`: the whole pipeline on generated data, end to end.

synth -> build -> train -> evaluate (TESTING) -> calibrate (a new model file for a target
specificity, evaluated too) -> predict (fresh recordings the model never saw) -> export
(ONNX, parity-checked), each step through the same library calls the commands use, then
one summary.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from .config import (
    MAX_SEED,
    BuildConfig,
    CalibrateConfig,
    DemoConfig,
    EvalConfig,
    SynthConfig,
    TrainConfig,
)
from .dataset.build import build_dataset
from .decisions.calibrate import calibrate
from .decisions.evaluate import evaluate
from .decisions.predict import Predictor
from .decisions.predictions_file import write_predictions, write_predictions_info, write_timeline
from .errors import InputError
from .model.export import export_onnx
from .recordings.synth.synth import synthesize
from .report import build_report
from .runtime import devices
from .runtime.device_policy import AUTO
from .training.train import train

log = logging.getLogger(__name__)

MARKER = ".leakhunter-demo"  # marks a folder the demo made, so it may rebuild it
CALIBRATED = "best-calibrated.pt"  # the calibrate step's new model file, beside best.pt


def run_demo(out: str | Path, cfg: DemoConfig = DemoConfig(), keep: bool = False,
             device: str = "auto") -> dict[str, Any]:
    """Run every stage into ``out``; returns the summary (also what the CLI prints).

    ``device`` goes to every step (``auto``: each step's own choice, see
    :mod:`leakhunter.runtime.devices`).

    Without ``keep`` the folder is rebuilt from nothing; it must be empty, absent, or a
    folder an earlier demo made (anything else is refused rather than deleted). With
    ``keep``, the steps whose output is already there are skipped.
    """
    out = Path(out)
    for command in AUTO:  # a device this machine lacks fails now, not after minutes
        devices.resolve(device, command)
    prepare_folder(out, keep)
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def step(name: str, done: bool, fn: Any) -> None:
        t0 = time.perf_counter()
        if done:
            log.info("demo: %s: kept from the earlier run", name)
        else:
            log.info("demo: %s", name)
            fn()
        timings[name] = round(time.perf_counter() - t0, 1)

    recordings, dataset, run = out / "recordings", out / "dataset", out / "run"
    fresh, export = out / "fresh", out / "export" / "model.onnx"
    synth_cfg = SynthConfig(count=cfg.count, duration_s=cfg.duration_s, seed=cfg.seed)
    fresh_cfg = SynthConfig(count=cfg.fresh, duration_s=cfg.duration_s,  # seeds wrap
                            seed=(cfg.seed + 1000) % (MAX_SEED + 1))
    step("synth", keep and recordings.exists(),
         lambda: synthesize(recordings, synth_cfg, overwrite=True))
    step("build", keep and (dataset / "build_report.json").exists(),
         lambda: build_dataset(recordings, dataset, BuildConfig(device=device),
                                       overwrite=True))
    step("train", keep and (run / "best.pt").exists(),
         lambda: train(dataset, run, TrainConfig(epochs=cfg.epochs, seed=cfg.seed,
                                                 time_budget_s=cfg.time_budget_s,
                                                 device=device),
                       overwrite=True))
    report: dict[str, Any] = {}
    step("evaluate", False, lambda: report.update(evaluate(run / "best.pt", dataset,
                                                           EvalConfig(), device=device)))
    # a utility's false-alarm budget: a new model file, best.pt itself stays as trained
    calibrated, strict = run / CALIBRATED, {}
    step("calibrate", False, lambda: strict.update(
        calibrated=calibrate(run / "best.pt", dataset, calibrated,
                             CalibrateConfig(target_specificity=cfg.target_specificity),
                             overwrite=True, device=device),
        report=evaluate(calibrated, dataset, EvalConfig(), out_dir=run / "eval-calibrated",
                        device=device)))
    step("synth fresh recordings", keep and fresh.exists(),
         lambda: synthesize(fresh, fresh_cfg, overwrite=True))
    records: list[dict[str, Any]] = []
    predictor = Predictor(run / "best.pt", device=device)

    def predict_fresh() -> None:
        records.extend(predictor.predict([fresh], segments=True))
        write_predictions(records, out / "predictions.csv", "csv", predictor.classes)
        write_predictions_info(out / "predictions.csv", predictor,
                               write_timeline(records, out / "predictions_segments.csv"))

    step("predict", False, predict_fresh)
    step("report", False, lambda: build_report(out / "predictions.csv", out / "report.html"))
    card: dict[str, Any] = {}
    step("export", False, lambda: card.update(export_onnx(run / "best.pt", export,
                                                                  device=device)))
    summary = _summary(out, report, records, card, timings, time.perf_counter() - started)
    summary["artifacts"]["calibrated model"] = str(calibrated)
    summary["calibrated"] = {"target_specificity": cfg.target_specificity,
                             "decision": strict["report"]["decision"],
                             "test": strict["report"]["recordings"]}
    return summary


def prepare_folder(out: Path, keep: bool) -> None:
    """Make ``out`` ready for a demo: created when missing; an earlier demo's folder is
    emptied (unless ``keep``); any other non-empty folder is refused with
    :class:`InputError`, never deleted. Marks the folder as the demo's."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise InputError(f"{out}: not empty and not made by `leakhunter demo`; choose "
                             f"another --out")
        if not keep:
            shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).touch()


def _summary(out: Path, report: dict[str, Any], records: list[dict[str, Any]],
             card: dict[str, Any], timings: dict[str, float], total: float) -> dict[str, Any]:
    judged = [r for r in records if r["decision"]]
    truly = [r for r in judged if "/LEAK/" in r["path"].replace("\\", "/")]
    return {
        "out": str(out),
        "artifacts": {
            "recordings": str(out / "recordings"), "dataset": str(out / "dataset"),
            "model": str(out / "run" / "best.pt"), "training curves": str(out / "run" /
                                                                         "curves.png"),
            "evaluation": str(Path(report["plots"][0]).parent),
            "predictions": str(out / "predictions.csv"), "onnx": str(out / "export" /
                                                                     "model.onnx"),
            "survey report": str(out / "report.html")},
        "test": report["recordings"], "decision": report["decision"],
        "test_recordings": report["dataset"]["recordings"],
        "fresh": {"recordings": len(records), "judged": len(judged),
                  "called_leak": sum(r["decision"] == "LEAK" for r in judged),
                  "true_leaks": len(truly),
                  "true_leaks_called": sum(r["decision"] == "LEAK" for r in truly)},
        "onnx_parity": card["parity"]["max_abs_diff_leak_probability"],
        "timings_s": timings, "total_s": round(total, 1),
    }
