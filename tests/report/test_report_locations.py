"""`leakhunter report --locations`: each pair of locations.csv drawn between its sensors
(position, interval, correlation plot), bad rows shown with what is wrong, a file that is
not a locations file refused in one line. A hand-written predictions and locations CSV:
no model, no correlator."""

from __future__ import annotations

import base64
import csv
import io
import re
from pathlib import Path

import pytest

from leakhunter.cli import main
from leakhunter.config import ReportConfig
from leakhunter.errors import InputError
from leakhunter.report import build_report
from leakhunter.report.locations import (
    MIN_BAND,
    REQUIRED,
    STATUSES,
    X0,
    X1,
    read_locations,
    tick_step,
)

from ..helpers.png import PNG_SIGNATURE
from ..helpers.survey import page_data

COLUMNS = ("a,b,distance_m,wave_speed_m_s,delay_s,position_m,low_m,high_m,status,peak,"
           "coherence,band_low_hz,band_high_hz,delay_error_s,speed_low_m_s,speed_high_m_s,"
           "window_s,seconds,sample_rate,reason,notes,speed_source,plot").split(",")
NO_MEDIA = ReportConfig(workers=1, audio="none", spectrograms="none")


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 6), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def _predictions(folder: Path) -> Path:
    """Two nights of sensors S1 (a leak both nights: alerting) and S2 (quiet)."""
    path = folder / "predictions.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "sensor_id", "recording_id", "timestamp", "leak_probability",
                    "vote_fraction", "decision", "status"])
        for night in ("20240301T230000", "20240302T230000"):
            w.writerow([f"S1~R1~{night}~20.wav", "S1", "R1", night, 0.9, 0.9, "LEAK", "ok"])
            w.writerow([f"S2~R2~{night}~20.wav", "S2", "R2", night, 0.1, 0.0, "NO LEAK", "ok"])
    return path


def _row(**values: object) -> dict[str, object]:
    return {c: values.get(c, "") for c in COLUMNS}


def _locations(folder: Path, rows: list[dict[str, object]]) -> Path:
    path = folder / "locations.csv"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, bytes]:
    """Predictions, and a locations.csv of four pairs, in the worst order: bad input,
    outside, no correlation, located (with its plot in plots/)."""
    png = _png()
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "pair0004.png").write_bytes(png)
    rows = [
        _row(a="rec/S5~R9~20240302T230000~20.wav", b="rec/a<b&c.wav", distance_m=50,
             status="bad input", wave_speed_m_s=1250.0, speed_source="--wave-speed",
             reason="cannot read rec/a<b&c.wav: <not audio> & truncated"),
        _row(a="rec/S3~R3~20240302T230000~20.wav", b="rec/S4~R4~20240302T230000~20.wav",
             distance_m=120, wave_speed_m_s=1100.0, delay_s=-0.11, position_m=-8.5,
             low_m=-12.0, high_m=-5.0, status="outside", peak=14.2, coherence=0.5,
             band_low_hz=100, band_high_hz=600),
        _row(a="rec/S2~R2~20240302T230000~20.wav", b="rec/S3~R3~20240302T230000~20.wav",
             distance_m=80, wave_speed_m_s=1250.0, status="no correlation", peak=3.1,
             reason="no common band: the sensors hear nothing in common"),
        _row(a="rec/S1~R1~20240302T230000~20.wav", b="rec/S2~R2~20240302T230000~20.wav",
             distance_m=300, wave_speed_m_s=1250.0, delay_s=-0.01232, position_m=142.3,
             low_m=130.0, high_m=155.5, status="located", peak=9.3, coherence=0.42,
             band_low_hz=200, band_high_hz=800, speed_low_m_s=1150.0, speed_high_m_s=1350.0,
             speed_source="material ductile iron", plot="plots/pair0004.png"),
    ]
    return _predictions(tmp_path), _locations(tmp_path, rows), png


def _section(html: Path) -> str:
    text = html.read_text(encoding="utf-8")
    found = re.search(r'<section id="locations">.*?</section>', text, re.S)
    assert found, "no locations section"
    return found.group(0)


def _blocks(section: str) -> dict[str, str]:
    return {m.group(1): m.group(0) for m in re.finditer(
        r'<div class="pair [^"]*" id="pair-\d+" data-status="([^"]*)">.*?</div>', section,
        re.S)}


def test_locations_are_drawn_between_their_sensors(files, tmp_path: Path, capsys) -> None:
    predictions, locations, png = files
    html = tmp_path / "survey.html"
    assert main(["report", str(predictions), "--out", str(html), "--locations",
                 str(locations), "--audio", "none", "--spectrograms", "none",
                 "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert ("locations: 4 pair(s) (1 located, 1 outside, 1 no correlation, 1 bad input); "
            "correlation plots for 1") in printed
    text = html.read_text(encoding="utf-8")
    assert '<a href="#locations">Locations</a>' in text
    # after the sensors, before the recordings
    assert text.index('<section id="sensors">') < text.index('<section id="locations">') \
        < text.index('<section id="recordings">')
    section = _section(html)
    # located first, then outside, no correlation, bad input (the file had them reversed)
    order = re.findall(r'data-status="([^"]*)"', section)
    assert order == ["located", "outside", "no correlation", "bad input"]
    blocks = _blocks(section)

    located = blocks["located"]
    assert "S1" in located and "S2" in located
    assert '<span class="LEAK">alerting</span>' in located  # S1 alerts in the predictions
    assert "142.3 m from A (130.0–155.5)" in located
    rect = re.search(r'<rect class="interval" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"',
                     located)
    assert rect, located
    scale = (X1 - X0) / 300
    assert float(rect.group(1)) == pytest.approx(X0 + 130.0 * scale, abs=0.01)
    assert float(rect.group(2)) == pytest.approx((155.5 - 130.0) * scale, abs=0.02)
    marker = re.search(r'<polygon class="position" points="([\d.]+),', located)
    assert float(marker.group(1)) + 7 == pytest.approx(X0 + 142.3 * scale, abs=0.01)
    ticks = re.findall(r'>(\d+) m</text>', located)
    assert ticks == ["0", "50", "100", "150", "200", "250", "300"]
    embedded = re.search(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', located)
    assert embedded and base64.b64decode(embedded.group(1)) == png
    assert png[:8] == PNG_SIGNATURE
    assert "wave speed 1250 m/s (1150–1350), material ductile iron" in located
    assert "delay -12.320 ms" in located and "peak quality 9.3" in located
    assert "coherence 0.420" in located and "band 200–800 Hz" in located

    outside = blocks["outside"]
    assert "at or beyond A (-8.5 m from A (-12.0–-5.0))" in outside
    assert re.search(rf'<polygon class="position" points="{X0 - 7:.2f},', outside)
    assert 'class="interval"' not in outside and "data:image" not in outside

    nothing = blocks["no correlation"]
    assert "the sensors hear nothing in common" in nothing and "<polygon" not in nothing

    bad = blocks["bad input"]
    assert "cannot read rec/a&lt;b&amp;c.wav: &lt;not audio&gt; &amp; truncated" in bad
    assert "a&lt;b&amp;c.wav" in bad and "a<b&c" not in bad and "<not audio>" not in section
    assert "S5" in bad  # named by the convention; the other end by its file name

    # the summary at the top says it too (the page's script draws it from the data)
    assert page_data(html)["summary"]["locations"]["counts"] == {
        "located": 1, "outside": 1, "no correlation": 1, "bad input": 1}
    summary = build_report(predictions, tmp_path / "again.html", NO_MEDIA,
                           locations=locations)["locations"]
    assert summary["counts"] == {"located": 1, "outside": 1, "no correlation": 1,
                                 "bad input": 1}
    assert (summary["plots"], summary["plots_missing"]) == (1, 0)


def test_no_section_without_locations(files, tmp_path: Path) -> None:
    predictions, _, _ = files
    s = build_report(predictions, tmp_path / "r.html", NO_MEDIA)
    text = (tmp_path / "r.html").read_text()
    assert s["locations"] is None and 'id="locations"' not in text
    assert "<!--LOCATIONS" not in text and 'href="#locations"' not in text


def test_missing_column_is_refused_in_one_line(files, tmp_path: Path, capsys) -> None:
    predictions, locations, _ = files
    bad = tmp_path / "bad.csv"
    bad.write_text(locations.read_text().replace(",low_m,", ",lower,", 1))
    html = tmp_path / "r.html"
    assert main(["report", str(predictions), "--out", str(html), "--locations",
                 str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("leakhunter: error: ")
    assert str(bad) in err[0] and "no column low_m" in err[0]
    assert not html.exists()
    with pytest.raises(InputError, match="no such locations file"):
        read_locations(tmp_path / "absent.csv")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00 binary")
    with pytest.raises(InputError, match="not UTF-8"):
        read_locations(tmp_path / "bin.csv")


def test_missing_plot_and_bad_numbers_are_notes(files, tmp_path: Path, capsys) -> None:
    predictions, locations, _ = files
    (tmp_path / "plots" / "pair0004.png").unlink()
    rows = list(csv.DictReader(locations.open()))
    rows.append(_row(a="x.wav", b="y.wav", distance_m="far", position_m="12", low_m="1",
                     high_m="20", status="located", peak="nan"))
    _locations(tmp_path, rows)
    html = tmp_path / "r.html"
    assert main(["report", str(predictions), "--out", str(html), "--locations",
                 str(locations), "--audio", "none", "--spectrograms", "none",
                 "--workers", "1"]) == 0
    assert "1 plot file(s) missing" in capsys.readouterr().out
    section = _section(html)
    assert "Correlation plot not found: plots/pair0004.png" in section
    assert "data:image" not in section
    # the row with bad numbers: shown, with its status and what is wrong, last of the located
    order = re.findall(r'data-status="([^"]*)"', section)
    assert order[:2] == ["located", "located"]
    broken = section.split('id="pair-2"', 1)[1].split("</div>", 1)[0]
    assert "x.wav" in broken and "distance_m &#x27;far&#x27; is not a number" in broken
    assert "peak &#x27;nan&#x27; is not a finite number" in broken
    assert "no position to draw" in broken


def test_locations_file_agrees_with_the_correlator() -> None:
    from leakhunter.locate.estimate import STATUSES as LOCATE_STATUSES
    from leakhunter.locate.run import LOCATION_COLUMNS

    assert STATUSES == LOCATE_STATUSES
    assert set(REQUIRED) <= set(LOCATION_COLUMNS) and tuple(COLUMNS) == LOCATION_COLUMNS


@pytest.mark.parametrize("distance, step", [(300, 50), (1, 0.2), (80, 10), (1234, 200),
                                            (8, 1), (0.05, 0.01)])
def test_ticks_are_round_numbers(distance: float, step: float) -> None:
    assert tick_step(distance) == pytest.approx(step)
    assert distance / tick_step(distance) <= 8


def test_narrow_intervals_given_speeds_and_odd_rows_read_right(files, tmp_path: Path) -> None:
    predictions, locations, _ = files
    rows = [
        # an interval of 0.5 m on a 431 m span: widened to stay visible beside the marker
        _row(a="n1.wav", b="n2.wav", distance_m=430.985, wave_speed_m_s=1335.7,
             speed_low_m_s=1335.7, speed_high_m_s=1335.7, delay_s=0.084516,
             delay_error_s=0.005174, position_m=174.8, low_m=174.6, high_m=175.1,
             status="located", peak=56.5),
        _row(a="o1.wav", b="o2.wav", distance_m=119.876, position_m=600, low_m=63.4,
             high_m=63.9, status="located", peak=7.0),  # off the span, off its interval
        _row(a="l1.wav", b="l2.wav", distance_m=100, position_m=40, high_m=45,
             status="located", peak=8.0),  # no low_m: the position is drawn, not the band
        _row(a="x1.wav", b="x2.wav", distance_m=100, status="outside", peak=9.0),
    ]
    _locations(tmp_path, rows)
    html = tmp_path / "r.html"
    build_report(predictions, html, NO_MEDIA, locations=locations)
    blocks = _section(html).split('data-status="')[1:]
    narrow, unbanded, off, outside = blocks  # located by peak quality, then outside
    width = float(re.search(r'<rect class="interval" x="[\d.]+" y="[\d.]+" width="([\d.]+)"',
                            narrow).group(1))
    assert width == pytest.approx(MIN_BAND)  # 0.74 units as drawn to scale
    assert "wave speed 1335.7 m/s," not in narrow and "1335.7–1335.7" not in narrow
    assert "delay 84.516 ± 5.174 ms" in narrow
    assert "a located position of 600 m lies off the 119.876 m span" in off
    assert "position_m 600 lies outside its own interval" in off
    assert "a located pair without low_m: its interval is not drawn" in unbanded
    assert '<polygon class="position"' in unbanded and 'class="interval"' not in unbanded
    assert "an outside pair without position_m: it is not drawn" in outside
    assert tick_step(5e-324) == 5e-324  # a span that underflows: one interval, no error


def test_a_bad_locations_file_or_a_plot_as_output_writes_nothing(files, tmp_path: Path,
                                                                capsys) -> None:
    predictions, locations, _ = files
    (tmp_path / "empty.csv").write_text("")
    sensors = tmp_path / "sensors.csv"
    sensors.write_text("kept\n")
    plot = tmp_path / "plots" / "pair0004.png"
    before = {p: p.read_bytes() for p in (sensors, plot, locations)}
    for flags, message in (
            (["--locations", tmp_path / "empty.csv", "--sensors", sensors, "--out",
              tmp_path / "r.html"], "not a leakhunter locations file"),
            (["--locations", tmp_path / "plots", "--out", tmp_path / "r.html"],
             "a folder, not a locations file"),
            (["--locations", locations, "--out", plot],
             f"--out {plot} would replace the input correlation plot")):
        assert main(["report", str(predictions), *map(str, flags)]) == 1
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
        assert {p: p.read_bytes() for p in before} == before and not (tmp_path /
                                                                        "r.html").exists()
