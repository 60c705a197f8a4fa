"""What ``predict`` and ``report`` both write from a predictions file: the survey report and
the sensor-level decisions, with the lines that say what they hold. One function, so
``predict --report/--sensors`` and ``report`` agree. Also the files each of the two may not
write over, checked before any work."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import ReportConfig
from ..errors import InputError
from ..runtime.outputs import refuse_clashes

ADVICE = "choose another file for it"


def check_predict_files(args: argparse.Namespace) -> None:
    """``predict``, before any work: no output (``--out``, its info file and segment
    timeline, ``--sensors``, ``--report``) may be MODEL, ``--onnx`` or its card, a recording
    INPUT names now, or another output."""
    from ..decisions.predictions_file import info_path, segments_path
    from ..recordings.files import find_recordings

    out = Path(args.out)
    try:
        recordings = find_recordings(args.inputs)
    except InputError:  # said where they are read; --watch may find none yet
        recordings = []
    card = None
    if args.onnx:
        from ..model.export import CARD_NAME

        card = Path(args.onnx).parent / CARD_NAME
    refuse_clashes([("--out", out), ("--out's info file", info_path(out)),
                    ("--out's segment timeline", segments_path(out) if args.segments
                     else None), ("--sensors", args.sensors), ("--report", args.report)],
                   [("MODEL", args.model), ("--onnx", args.onnx), ("model card of --onnx", card),
                    *(("recording", path) for path in recordings)], ADVICE)


def check_report_files(args: argparse.Namespace) -> None:
    """``report``, before any work: neither ``--out`` nor ``--sensors`` may be PREDICTIONS,
    its info file or segment timeline, a model (``--model``, the one the info file names),
    ``--locations`` or a correlation plot it names, a recording the predictions name, or the
    other output. A ``--locations`` file that is not one is refused here too."""
    from ..decisions.predictions_file import info_path, segments_path
    from ..report.load import load_survey

    predictions = Path(args.predictions)
    survey = load_survey(predictions)  # also refuses a file that is not predictions
    plots: list[Path] = []
    if args.locations:  # read now, so that a bad file is refused before anything is written
        from ..report.locations import read_locations

        where = Path(args.locations).parent
        plots = [where / p.texts["plot"] for p in read_locations(args.locations).pairs
                 if p.texts["plot"]]
    info, model = survey.info or {}, survey.model or {}
    timelines = [segments_path(predictions), *([predictions.with_name(info["segments"])]
                                               if info.get("segments") else [])]
    refuse_clashes([("--out", args.out), ("--sensors", args.sensors)],
                   [("PREDICTIONS", predictions), ("info file", info_path(predictions)),
                    *(("segment timeline", path) for path in timelines),
                    ("--model", args.model), ("model", model.get("path")),
                    ("model", model.get("onnx")), ("--locations", args.locations),
                    *(("correlation plot", plot) for plot in plots),
                    *(("recording", row["audio_path"]) for row in survey.rows)], ADVICE)


def report_outputs(predictions: Path, report: str | None, sensors: str | None,
                   cfg: ReportConfig, model: str | None = None,
                   locations: str | None = None) -> None:
    """The survey report and/or sensors.csv of the ``predictions`` file, and what they
    hold. Both read the file, so ``predict --sensors`` and ``report --sensors`` agree."""
    from ..report import build_report, sensor_view, write_sensors_csv
    from ..report.load import load_survey

    if sensors:
        view = sensor_view(load_survey(predictions).rows, cfg)
        write_sensors_csv(view, sensors)
        alerting = sum(a["alert"] for a in view.alerts)
        print(f"sensor decisions written to {sensors}: {len(view.alerts)} sensor(s), "
              f"{alerting} alerting ({cfg.min_leak_nights} of the last {cfg.nights} nights)"
              + (f"; {view.note}" if view.note else ""))
    if report:
        s = build_report(predictions, report, cfg, model=model, locations=locations)
        print(f"report written to {s['out']} ({s['bytes'] / 1e6:.2f} MB): "
              f"{s['recordings']} recordings, {s['leaks']} called leaks, {s['not_judged']} "
              f"not judged; audio for {s['audio']} ({s['audio_bytes'] / 1e6:.2f} MB), "
              f"spectrograms for {s['spectrograms']}")
        if s["audio_capped"]:
            print(f"  audio size cap ({cfg.audio_cap_mb:g} MB) reached: {s['audio_capped']} "
                  f"recording(s) without audio")
        if s["missing_audio"]:
            print(f"  {s['missing_audio']} recording file(s) missing or unreadable: shown "
                  f"without audio or spectrogram")
        if s["sensor_note"]:
            print(f"  sensors: {s['sensor_note']}")
        if s["locations"] is not None:
            loc = s["locations"]
            counts = ", ".join(f"{n} {k}" for k, n in loc["counts"].items()) or "none"
            print(f"  locations: {loc['pairs']} pair(s) ({counts}); correlation plots for "
                  f"{loc['plots']}" + (f", {loc['plots_missing']} plot file(s) missing"
                                       if loc["plots_missing"] else "")
                  + (f", {loc['plots_capped']} left out by the size cap"
                     if loc["plots_capped"] else ""))
