"""`leakhunter demo`: the whole pipeline on generated data, end to end.

synth -> build -> train -> evaluate (TESTING) -> predict (fresh recordings the model never
saw) -> export (ONNX, parity-checked), each step through the same library calls the
commands use, then one summary.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from .config import BuildConfig, DemoConfig, EvalConfig, SynthConfig, TrainConfig
from .dataset.build import build_dataset
from .errors import InputError
from .evaluate import evaluate
from .export import export_onnx
from .predict import Predictor, write_predictions, write_predictions_info, write_timeline
from .report import build_report
from .synth import synthesize
from .train import train

log = logging.getLogger(__name__)

MARKER = ".leakhunter-demo"  # marks a folder the demo made, so it may rebuild it


def run_demo(out: str | Path, cfg: DemoConfig = DemoConfig(), keep: bool = False
             ) -> dict[str, Any]:
    """Run every stage into ``out``; returns the summary (also what the CLI prints).

    Without ``keep`` the folder is rebuilt from nothing; it must be empty, absent, or a
    folder an earlier demo made (anything else is refused rather than deleted). With
    ``keep``, the steps whose output is already there are skipped.
    """
    out = Path(out)
    _prepare(out, keep)
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
    step("synth", keep and recordings.exists(),
         lambda: synthesize(recordings, synth_cfg, overwrite=True))
    step("build", keep and (dataset / "build_report.json").exists(),
         lambda: build_dataset(recordings, dataset, BuildConfig(), overwrite=True))
    step("train", keep and (run / "best.pt").exists(),
         lambda: train(dataset, run, TrainConfig(epochs=cfg.epochs, seed=cfg.seed,
                                                 time_budget_s=cfg.time_budget_s),
                       overwrite=True))
    report: dict[str, Any] = {}
    step("evaluate", False, lambda: report.update(evaluate(run / "best.pt", dataset,
                                                           EvalConfig())))
    fresh_cfg = SynthConfig(count=cfg.fresh, duration_s=cfg.duration_s, seed=cfg.seed + 1000)
    step("synth fresh recordings", keep and fresh.exists(),
         lambda: synthesize(fresh, fresh_cfg, overwrite=True))
    records: list[dict[str, Any]] = []
    predictor = Predictor(run / "best.pt")

    def predict_fresh() -> None:
        records.extend(predictor.predict([fresh], segments=True))
        write_predictions(records, out / "predictions.csv", "csv", predictor.classes)
        write_predictions_info(out / "predictions.csv", predictor,
                               write_timeline(records, out / "predictions_segments.csv"))

    step("predict", False, predict_fresh)
    step("report", False, lambda: build_report(out / "predictions.csv", out / "report.html"))
    card: dict[str, Any] = {}
    step("export", False, lambda: card.update(export_onnx(run / "best.pt", export)))
    return _summary(out, report, records, card, timings, time.perf_counter() - started)


def _prepare(out: Path, keep: bool) -> None:
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
