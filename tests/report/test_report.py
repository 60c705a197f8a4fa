"""`leakhunter report`, `predict --report/--sensors`: what the page holds, sensors over
nights, media encoding, and bad input. The page's behaviour in a browser is tested in
test_report_browser.py."""

from __future__ import annotations

import base64
import io
import json
import shutil
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from leakhunter.cli import main
from leakhunter.config import AudioConfig, FeatureConfig, ReportConfig
from leakhunter.decisions.predictions_file import info_path
from leakhunter.errors import InputError
from leakhunter.recordings.audio import parse_timestamp
from leakhunter.recordings.features import LogMel, extract
from leakhunter.report import build_report, sensor_view, write_sensors_csv
from leakhunter.report.load import load_survey
from leakhunter.report.media import (
    audible_rate,
    clip_window,
    encode_audio,
    recording_media,
    spectrogram,
)
from leakhunter.report.sensors import night_of

from ..helpers.faults import one_line
from ..helpers.survey import Survey, page_data, read_csv, survey  # noqa: F401 (fixture)

# --- the page ------------------------------------------------------------------------------

def test_report_holds_the_predictions_and_is_self_contained(survey: Survey, tmp_path: Path,
                                                            capsys) -> None:
    html = tmp_path / "survey.html"
    assert main(["report", str(survey.predictions), "--out", str(html), "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    data = page_data(html)
    rows = survey.rows
    leaks = [r for r in rows if r["decision"] == "LEAK"]
    s = data["summary"]
    assert (s["recordings"], s["leaks"], s["no_leaks"], s["not_judged"]) == (
        len(rows), len(leaks), sum(r["decision"] == "NO LEAK" for r in rows),
        sum(r["decision"] == "" for r in rows))
    assert s["statuses"]["out of water"] == 2  # one per label in the fixture
    assert f"{len(rows)} recordings, {len(leaks)} called leaks" in printed
    assert f"{html.stat().st_size:,} bytes" in html.read_text()  # its own size, exactly
    # the model card comes from the info file predict wrote, with the threshold it used
    assert data["model"]["path"] == str(survey.model.resolve())
    assert data["model"]["class_names"] == ["LEAK", "NOLEAK"]
    assert data["decision"]["threshold"] == pytest.approx(survey.threshold)
    assert data["labels"] == {"leak": "LEAK", "noleak": "NOLEAK"}
    # table rows in file order; timeline for every judged recording
    col = data["columns"].index("path")
    assert [r[col] for r in data["rows"]] == [r["path"] for r in rows]
    judged = [i for i, r in enumerate(rows) if r["decision"]]
    assert sorted(map(int, data["timelines"])) == judged
    assert data["segment_hop_s"] == pytest.approx(0.125)
    # media for called leaks only (the default), each with audio and a spectrogram
    flagged = {str(i) for i, r in enumerate(rows) if r["decision"] == "LEAK"}
    assert set(data["media"]) == flagged
    assert all(m["mime"] == "audio/ogg" and m["spectrogram"] for m in data["media"].values())
    assert s["media"]["audio"] == len(flagged) and s["media"]["audio_capped"] == 0
    # nothing is fetched from anywhere
    text = html.read_text()
    for needle in ('src="http', "src='http", '<link', 'url(http', 'import(', 'fetch('):
        assert needle not in text, needle
    assert "</script>" not in text.split('id="survey-data">', 1)[1].split("</script>", 1)[0]


def test_audio_cap_drops_the_least_leak_like_and_says_so(survey: Survey, tmp_path: Path,
                                                         capsys) -> None:
    leaks = sorted((r for r in survey.rows if r["decision"] == "LEAK"),
                   key=lambda r: -float(r["leak_probability"]))
    # room for exactly one clip: the most leak-like recording's
    one = ReportConfig(workers=1, audio_cap_mb=1e-6)
    first = build_report(survey.predictions, tmp_path / "a.html", ReportConfig(workers=1))
    per_clip = first["audio_bytes"] / first["audio"]
    cap = (per_clip * 1.5) / 1e6
    s = build_report(survey.predictions, tmp_path / "b.html",
                     ReportConfig(workers=1, audio_cap_mb=cap))
    assert s["audio"] >= 1 and s["audio"] + s["audio_capped"] == len(leaks)
    data = page_data(tmp_path / "b.html")
    kept = [survey.rows[int(i)]["path"] for i, m in data["media"].items() if "audio" in m]
    assert leaks[0]["path"] in kept
    assert all(m["capped"] for m in data["media"].values() if "audio" not in m)
    assert data["summary"]["media"]["audio_capped"] == s["audio_capped"] > 0
    s = build_report(survey.predictions, tmp_path / "c.html", one)
    assert s["audio"] == 0 and s["audio_capped"] == len(leaks)
    assert all("spectrogram" in m for m in page_data(tmp_path / "c.html")["media"].values())


def test_audio_all_and_none(survey: Survey, tmp_path: Path) -> None:
    s = build_report(survey.predictions, tmp_path / "all.html",
                     ReportConfig(workers=1, audio="all", spectrograms="none"))
    judged_or_not = len(survey.rows)
    assert s["audio"] == judged_or_not and s["spectrograms"] == 0
    s = build_report(survey.predictions, tmp_path / "none.html",
                     ReportConfig(workers=1, audio="none", spectrograms="none"))
    assert (s["audio"], s["spectrograms"]) == (0, 0)
    assert page_data(tmp_path / "none.html")["media"] == {}


def test_missing_recording_keeps_its_row(survey: Survey, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "s"
    shutil.copytree(survey.dir, folder)
    rows = read_csv(folder / "predictions.csv")
    gone = next(i for i, r in enumerate(rows) if r["decision"] == "LEAK")
    # predictions that point at copies of the recordings, one of them deleted
    shutil.copytree(survey.recordings, tmp_path / "rec")
    text = (folder / "predictions.csv").read_text().replace(str(survey.recordings),
                                                           str(tmp_path / "rec"))
    (folder / "predictions.csv").write_text(text)
    Path(rows[gone]["path"].replace(str(survey.recordings), str(tmp_path / "rec"))).unlink()
    html = tmp_path / "r.html"
    assert main(["report", str(folder / "predictions.csv"), "--out", str(html),
                 "--workers", "1"]) == 0
    assert "1 recording file(s) missing or unreadable" in capsys.readouterr().out
    data = page_data(html)
    assert data["summary"]["recordings"] == len(rows)
    assert data["media"][str(gone)] == {"missing": "the recording file is missing"}
    assert data["found"][gone] is False and data["summary"]["media"]["missing"] == 1


def test_json_predictions_and_old_files_without_info(survey: Survey, tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    assert main(["-q", "predict", str(survey.model), str(survey.recordings), "--out", str(out),
                 "--threshold", repr(survey.threshold), "--workers", "1"]) == 0
    assert json.loads(info_path(out).read_text())["segments"] is None
    loaded = load_survey(out)
    assert [r["path"] for r in loaded.rows] == [r["path"] for r in survey.rows]
    assert loaded.timelines == {}
    # a predictions file from before the info file: the card is unknown unless --model
    info_path(out).unlink()
    s = build_report(out, tmp_path / "old.html", ReportConfig(workers=1, audio="none"))
    data = page_data(tmp_path / "old.html")
    assert data["model"] is None and "--model" in data["model_note"]
    assert s["recordings"] == len(survey.rows)
    build_report(out, tmp_path / "m.html", ReportConfig(workers=1, audio="none"),
                 model=survey.model)
    assert page_data(tmp_path / "m.html")["model"]["class_names"] == ["LEAK", "NOLEAK"]


@pytest.mark.parametrize("content, message", [
    ("path,label\na.wav,LEAK\n", "not a leakhunter predictions file (no column decision"),
    ("\x00\xff\xfe binary", "not a leakhunter predictions file"),
    ("path,decision,status,leak_probability\na.wav,MAYBE,ok,0.3\n", "decision 'MAYBE'"),
    ("path,decision,status,leak_probability\na.wav,LEAK,ok,high\n",
     "row 2: leak_probability 'high' is not a number"),
])
def test_other_files_are_refused_with_the_reason(tmp_path: Path, capsys, content: str,
                                                 message: str) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes(content.encode("latin-1"))
    assert main(["report", str(path), "--out", str(tmp_path / "r.html")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("leakhunter: error: ") and message in err and str(path) in err
    assert not (tmp_path / "r.html").exists()


def test_newer_or_foreign_info_file_is_refused(survey: Survey, tmp_path: Path) -> None:
    folder = tmp_path / "s"
    shutil.copytree(survey.dir, folder)
    info = json.loads(info_path(folder / "predictions.csv").read_text())
    info_path(folder / "predictions.csv").write_text(json.dumps({**info, "version": 99}))
    with pytest.raises(InputError, match="format version 99; this leakhunter reads version 1"):
        load_survey(folder / "predictions.csv")
    info_path(folder / "predictions.csv").write_text('{"format": "something else"}')
    with pytest.raises(InputError, match="not a leakhunter predictions info file"):
        load_survey(folder / "predictions.csv")
    (tmp_path / "list.json").write_text('{"rows": []}')
    with pytest.raises(InputError, match="expected a JSON list of records"):
        load_survey(tmp_path / "list.json")
    with pytest.raises(InputError, match="no such predictions file"):
        load_survey(tmp_path / "absent.csv")


def test_report_settings_are_checked(survey: Survey, tmp_path: Path, capsys) -> None:
    assert main(["report", str(survey.predictions), "--nights", "3", "--min-leak-nights", "4",
                 "--out", str(tmp_path / "r.html")]) == 1
    assert "min_leak_nights must be between 1 and nights" in capsys.readouterr().err
    toml = tmp_path / "r.toml"
    toml.write_text('audio = "none"\nspectrograms = "none"\n')
    assert main(["-q", "report", str(survey.predictions), "--config", str(toml), "--out",
                 str(tmp_path / "r.html"), "--workers", "1"]) == 0
    assert page_data(tmp_path / "r.html")["media"] == {}


def test_report_never_writes_over_what_it_reads(survey: Survey, tmp_path: Path,
                                                capsys) -> None:
    pred = tmp_path / "predictions.csv"
    info, timeline = info_path(pred), tmp_path / "predictions_segments.csv"
    for path in (pred, info, timeline):
        shutil.copy(survey.dir / path.name, path)
    model = Path(shutil.copy(survey.model, tmp_path / "best.pt"))
    link, html = tmp_path / "link.html", tmp_path / "r.html"
    link.symlink_to(pred)
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}
    for flags, message in [
        (["--out", pred], f"--out {pred} would replace the input PREDICTIONS {pred}: "),
        (["--out", info], f"--out {info} would replace the input info file {info}: "),
        (["--out", timeline], f"--out {timeline} would replace the input segment timeline"),
        (["--sensors", timeline, "--out", html], f"--sensors {timeline} would replace the "
                                                 f"input segment timeline"),
        (["--sensors", pred, "--out", html], f"--sensors {pred} would replace the input "
                                             f"PREDICTIONS"),
        (["--out", link], f"--out {link} would replace the input PREDICTIONS {pred}"),
        (["--model", model, "--out", model], f"--out {model} would replace the input "
                                             f"--model {model}"),
        (["--out", html, "--sensors", html], f"--sensors {html} is the same file as --out "
                                             f"{html}: give each output its own file"),
    ]:
        assert main(["report", str(pred), *map(str, flags)]) == 1
        one_line(capsys.readouterr().err, message)
        assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before, flags


# --- sensors over nights -------------------------------------------------------------------

def _row(sensor: str, when: str, decision: str, prob: float) -> dict:
    return {"path": f"{sensor}~R~{when}~20.wav", "sensor_id": sensor, "timestamp": when,
            "decision": decision, "leak_probability": prob, "vote_fraction": prob,
            "status": "ok" if decision else "silence"}


def test_persistent_sensors_alert_and_one_off_calls_do_not() -> None:
    rows = []
    for night in range(1, 9):  # eight nights of two sensors, a night at 23:00 and 02:00
        day = f"202403{night:02d}"
        nxt = f"202403{night + 1:02d}"
        # A: a leak from night 4 on, heard at 23:00 and at 02:00 (same night)
        rows.append(_row("A", f"{day}T230000", "LEAK" if night >= 4 else "NO LEAK", 0.8))
        rows.append(_row("A", f"{nxt}T020000", "NO LEAK", 0.3))
        # B: one truck on night 6
        rows.append(_row("B", f"{day}T230000", "LEAK" if night == 6 else "NO LEAK",
                         0.9 if night == 6 else 0.1))
    rows.append(_row("C", "20240308T230000", "", 0.0))  # never judged
    view = sensor_view(rows, ReportConfig(nights=4, min_leak_nights=3))
    assert [a["sensor_id"] for a in view.alerts] == ["A", "B", "C"]
    a, b, c = view.alerts
    assert (a["alert"], a["leak_nights"], a["recent_nights"], a["first_leak_night"]) == (
        True, 4, 4, "2024-03-04")
    assert a["nights"] == 8 and a["recordings"] == 16  # 02:00 joins the evening before
    assert (b["alert"], b["leak_nights"], b["first_leak_night"]) == (False, 1, "2024-03-06")
    assert b["max_probability_recent"] == 0.9
    assert (c["alert"], c["recent_nights"], c["judged"], c["latest_decision"]) == (
        False, 0, 0, "")
    assert view.nights[0] == "2024-03-01" and view.nights[-1] == "2024-03-08"
    assert view.grid[0]["2024-03-04"] == [0.8, 0.8, 2, True]
    assert view.grid[2]["2024-03-08"] == [None, None, 1, None]
    assert view.note == ""


def test_sensor_view_says_why_it_is_empty(tmp_path: Path) -> None:
    rows = [{"path": "a.wav", "sensor_id": "", "timestamp": "", "decision": "LEAK",
             "leak_probability": 0.9, "vote_fraction": 1.0},
            {"path": "S1~R1~yesterday~20.wav", "sensor_id": "S1", "timestamp": "yesterday",
             "decision": "LEAK", "leak_probability": 0.9, "vote_fraction": 1.0}]
    view = sensor_view(rows)
    assert view.alerts == [] and "1 of 2 recording(s) have no sensor id" in view.note
    assert "timestamp that is not a date (e.g. 'yesterday')" in view.note
    out = write_sensors_csv(view, tmp_path / "sensors.csv")
    assert out.read_text().splitlines() == [
        "rank,sensor_id,alert,leak_nights,recent_nights,first_leak_night,last_night,"
        "mean_probability_recent,max_probability_recent,latest_decision,nights,recordings,"
        "judged"]


def test_timestamps_and_nights() -> None:
    assert parse_timestamp("20240305T021500") == datetime(2024, 3, 5, 2, 15)
    assert parse_timestamp("2024-03-05 02:15:00") == datetime(2024, 3, 5, 2, 15)
    assert parse_timestamp("2024-03-05T02:15:00+01:00") == datetime(2024, 3, 5, 2, 15)
    assert parse_timestamp("2024-03-05T02:15:00+01:00", utc=True) == datetime(2024, 3, 5, 1, 15)
    assert parse_timestamp("20240305_021500") == datetime(2024, 3, 5, 2, 15)
    assert parse_timestamp("R12") is None and parse_timestamp("") is None
    assert night_of(datetime(2024, 3, 5, 2, 15)) == date(2024, 3, 4)
    assert night_of(datetime(2024, 3, 4, 22, 0)) == date(2024, 3, 4)
    assert night_of(datetime(2024, 3, 5, 12, 0)) == date(2024, 3, 5)


def test_predict_writes_sensors_csv_and_report(survey: Survey, tmp_path: Path,
                                               capsys) -> None:
    sensors, html = tmp_path / "sensors.csv", tmp_path / "s.html"
    assert main(["predict", str(survey.model), str(survey.recordings), "--out",
                 str(tmp_path / "p.csv"), "--threshold", repr(survey.threshold), "--workers",
                 "1", "--sensors", str(sensors), "--report", str(html)]) == 0
    printed = capsys.readouterr().out
    table = read_csv(sensors)
    assert len(table) == 8  # 4 sensors per label in the fixture
    assert f"sensor decisions written to {sensors}: 8 sensor(s)" in printed
    by_sensor = {}
    for r in survey.rows:
        by_sensor.setdefault(r["sensor_id"], []).append(r)
    for row in table:
        mine = by_sensor[row["sensor_id"]]
        assert int(row["recordings"]) == len(mine)
        assert int(row["judged"]) == sum(r["decision"] != "" for r in mine)
        alert = int(row["leak_nights"]) >= ReportConfig().min_leak_nights
        assert row["alert"] == ("yes" if alert else "no")
    assert [int(r["rank"]) for r in table] == list(range(1, 9))
    assert page_data(html)["sensors"]["alerts"] == json.loads(json.dumps(
        sensor_view(load_survey(tmp_path / "p.csv").rows).alerts))
    # `report --sensors` writes the same table from the predictions file
    again = tmp_path / "again.csv"
    assert main(["-q", "report", str(tmp_path / "p.csv"), "--sensors", str(again), "--out",
                 str(tmp_path / "t.html"), "--audio", "none", "--spectrograms", "none"]) == 0
    assert again.read_text() == sensors.read_text()


# --- media ---------------------------------------------------------------------------------

def test_audio_rate_is_reduced_only_where_nothing_audible_is_lost() -> None:
    rate = 44100
    t = np.arange(rate * 2) / rate
    low = (0.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    assert audible_rate(low, rate) <= 4000  # all energy at 300 Hz: the floor rate
    noise = np.random.default_rng(0).standard_normal(rate * 2).astype(np.float32)
    assert audible_rate(noise, rate) == rate  # broadband: nothing may go
    both = low + 1e-4 * noise  # noise 74 dB under the tone: inaudible beside it
    assert audible_rate(both, rate) <= 4000
    tone = (0.5 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)
    assert 6000 <= audible_rate(tone, rate) <= 7000


def test_clip_is_vorbis_and_decodes_to_the_same_sound() -> None:
    rate = 4096
    t = np.arange(rate * 3) / rate
    wave = (0.05 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    encoded, mime = encode_audio(wave, rate)
    assert mime == "audio/ogg" and encoded[:4] == b"OggS"
    back, back_rate = sf.read(io.BytesIO(encoded), dtype="float32")
    assert back_rate == rate and abs(back.size - wave.size) < rate // 10
    assert np.abs(back).max() == pytest.approx(0.9, abs=0.05)  # peak-normalised
    spectrum = np.abs(np.fft.rfft(back[:rate * 2]))
    assert np.argmax(spectrum) * rate / (rate * 2) == pytest.approx(440, abs=2)
    assert len(encoded) < wave.size * 2 / 4  # well under 16-bit PCM


def test_spectrogram_is_the_models_front_end() -> None:
    cfg = FeatureConfig(top_db=None)
    wave = np.random.default_rng(1).standard_normal(cfg.segment_samples).astype(np.float32)
    db, low, high = spectrogram(wave, cfg)
    (features,) = extract([wave], LogMel(cfg))
    np.testing.assert_allclose(db, features[0], atol=1e-3)
    assert high == pytest.approx(float(features.max()), abs=1e-3) and low == high - 80


def test_clip_window_centres_on_the_peak() -> None:
    assert clip_window(10.0, 30.0, 4.0, 0.25) == (0.0, 10.0)
    assert clip_window(120.0, 30.0, 60.0, 0.25) == (45.125, 75.125)
    assert clip_window(120.0, 30.0, 119.75, 0.25) == (90.0, 120.0)
    assert clip_window(120.0, 30.0, None, 0.25) == (0.0, 30.0)


def test_media_for_unreadable_and_long_recordings(tmp_path: Path) -> None:
    cfg = FeatureConfig()
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not audio")
    got = recording_media(str(bad), True, True, cfg, AudioConfig(), 30.0, None)
    assert set(got) == {"missing"} and "unreadable" in got["missing"]
    assert recording_media(None, True, True, cfg, AudioConfig(), 30.0, None) == {
        "missing": "the recording file is missing"}
    long = tmp_path / "long.flac"
    sf.write(long, 0.1 * np.random.default_rng(2).standard_normal(8000 * 90), 8000)
    got = recording_media(str(long), True, True, cfg, AudioConfig(), 20.0, 50.0)
    assert got["clip"] == [40.125, 60.125, 90.0]
    back, rate = sf.read(io.BytesIO(base64.b64decode(got["audio"])))
    assert rate == got["rate"] == 8000 and back.size == pytest.approx(20 * 8000, abs=800)
    assert got["db"][1] - got["db"][0] == 80


def test_undefined_metrics_in_the_card_do_not_break_the_page(survey: Survey,
                                                              tmp_path: Path) -> None:
    folder = tmp_path / "s"
    shutil.copytree(survey.dir, folder)
    path = info_path(folder / "predictions.csv")
    info = json.loads(path.read_text())
    info["model"]["metrics"] = {"file_f1": 0.5, "roc_auc": float("nan")}
    path.write_text(json.dumps(info))  # Python writes NaN, which JSON (and JS) cannot read
    build_report(folder / "predictions.csv", tmp_path / "r.html",
                 ReportConfig(workers=1, audio="none", spectrograms="none"))
    blob = (tmp_path / "r.html").read_text().split('id="survey-data">', 1)[1]
    assert "NaN" not in blob.split("</script>", 1)[0]
    assert page_data(tmp_path / "r.html")["model"]["metrics"] == {"file_f1": 0.5,
                                                                   "roc_auc": None}


def test_empty_and_multiclass_predictions(multiclass_run, tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("path,sensor_id,recording_id,timestamp,gain_db,duration_s,segments,"
                     "leak_probability,vote_fraction,decision,threshold,status\n")
    s = build_report(empty, tmp_path / "e.html", ReportConfig(workers=1))
    assert (s["recordings"], s["sensors"], s["sensor_note"]) == (0, 0, "no recordings")
    rec, _, run = multiclass_run
    out = tmp_path / "m.csv"
    assert main(["-q", "predict", str(run / "best.pt"), str(rec), "--out", str(out),
                 "--workers", "1"]) == 0
    build_report(out, tmp_path / "m.html", ReportConfig(workers=1, audio="none",
                                                        spectrograms="none"))
    data = page_data(tmp_path / "m.html")
    # leaks are LEAK and CRACK; "not a leak" is the class for a sound pipe
    assert data["labels"] == {"leak": "LEAK", "noleak": "NORMAL"}
    assert data["extra"] == ["top_class", "familiarity"]  # predict writes familiarity too
    col = data["columns"].index("top_class")
    assert {r[col] for r in data["rows"]} <= set(data["model"]["class_names"]) | {""}


def test_predicted_class_column_is_the_recordings_class(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("path,decision,status,leak_probability,predicted_class,p_LEAK\n"
                    "a.wav,LEAK,ok,0.9,CRACK,0.2\nb.wav,,silence,,,\n")
    survey = load_survey(path)
    assert [r["top_class"] for r in survey.rows] == ["CRACK", ""]
    assert survey.extra_columns == ["top_class"]
    assert survey.rows[0]["audio_path"] is None and survey.rows[1]["leak_probability"] is None


def test_interrupted_report_leaves_the_old_file(survey: Survey, tmp_path: Path,
                                                monkeypatch, capsys) -> None:
    import leakhunter.report.page as page

    html = tmp_path / "survey.html"
    html.write_text("yesterday's report")
    calls = []

    def interrupted(*args):
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return recording_media(*args)

    monkeypatch.setattr(page, "recording_media", interrupted)
    assert main(["report", str(survey.predictions), "--out", str(html), "--workers",
                 "1"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert html.read_text() == "yesterday's report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["survey.html"]


def test_unwritable_outputs_are_reported_in_one_line(survey: Survey, tmp_path: Path,
                                                     capsys) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["report", str(survey.predictions), "--out", str(blocker / "r.html"),
                 "--audio", "none", "--spectrograms", "none"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("leakhunter: error: ") and "r.html: writing the report failed" in err
    assert main(["report", str(survey.predictions), "--out", str(tmp_path / "r.html"),
                 "--sensors", str(blocker / "s.csv"), "--audio", "none"]) == 1
    assert "s.csv: writing the sensor decisions failed" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
