"""What ``predict`` and ``report`` both write from a predictions file: the survey report and
the sensor-level decisions, with the lines that say what they hold. One function, so
``predict --report/--sensors`` and ``report`` agree."""

from __future__ import annotations

from pathlib import Path

from ..config import ReportConfig


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
