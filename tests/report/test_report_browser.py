"""The survey report in a real headless browser: numbers, filters, keyboard, audio, review
marks exported and kept across a reload, missing files, a 10,000-recording survey."""

from __future__ import annotations

import csv
import shutil
import time
from pathlib import Path

import pytest

from leakhunter.config import ReportConfig
from leakhunter.dataset.sources import discover
from leakhunter.report import build_report

from ..helpers.browser import browser, load, text, wait_for  # noqa: F401 (fixture)
from ..helpers.survey import Survey, read_csv, survey, ten_thousand  # noqa: F401

pytestmark = pytest.mark.browser


def _select(driver, element_id: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", element_id)).select_by_value(value)


def _count(driver) -> int:
    return int(text(driver, "#match-count"))


def _keys(driver, keys: str) -> None:
    driver.find_element("tag name", "body").send_keys(keys)


def _title(driver) -> str:
    return wait_for(driver, lambda: driver.execute_script(
        "var t = document.getElementById('detail-title'); return t && t.textContent;"))


def test_review_a_survey_in_the_browser(survey: Survey, browser, tmp_path: Path) -> None:
    html = tmp_path / "survey.html"
    build_report(survey.predictions, html, ReportConfig(workers=1))
    rows = survey.rows
    leaks = [r for r in rows if r["decision"] == "LEAK"]
    load(browser, html)

    # the summary says what the CSV says
    assert text(browser, "#sum-recordings b") == str(len(rows))
    assert text(browser, "#sum-leaks b") == str(len(leaks))
    assert text(browser, "#sum-noleaks b") == str(sum(r["decision"] == "NO LEAK" for r in rows))
    assert text(browser, "#sum-notjudged b") == str(sum(not r["decision"] for r in rows))
    assert "out of water 2" in text(browser, "#sum-statuses")
    assert "LEAK, NOLEAK" in text(browser, "#model-card")
    assert _count(browser) == len(rows) and text(browser, "#total-count") == str(len(rows))

    # filters
    _select(browser, "f-decision", "LEAK")
    assert _count(browser) == len(leaks)
    cells = browser.find_elements("css selector", "#table tbody tr td:nth-child(4)")
    assert [c.text for c in cells] == ["LEAK"] * len(leaks)
    _select(browser, "f-decision", "-")
    assert _count(browser) == 2
    _select(browser, "f-decision", "")
    sensor = rows[0]["sensor_id"]
    _select(browser, "f-sensor", sensor)
    assert _count(browser) == sum(r["sensor_id"] == sensor for r in rows)
    _select(browser, "f-sensor", "")
    browser.find_element("id", "f-search").send_keys(rows[5]["recording_id"].lower())
    assert _count(browser) == 1
    browser.find_element("id", "f-search").send_keys("\b" * 10)  # typed away, as a user
    wait_for(browser, lambda: _count(browser) == len(rows), what="search cleared")

    # keyboard: next / previous flagged recording
    names = [Path(r["path"]).name for r in leaks]
    _keys(browser, "n")
    assert _title(browser) == names[0]
    _keys(browser, "n")
    wait_for(browser, lambda: _title(browser) == names[1], what="second flagged")
    _keys(browser, "p")
    wait_for(browser, lambda: _title(browser) == names[0], what="back to the first")

    # the embedded audio loads and plays
    state = browser.execute_async_script("""
        var done = arguments[arguments.length - 1];
        var a = document.querySelector('#detail-audio audio');
        if (!a) { done({missing: true}); return; }
        function report() { done({error: a.error && a.error.code, ready: a.readyState,
                                  duration: a.duration}); }
        a.play().then(function () { setTimeout(report, 300); },
                      function (e) { done({error: String(e)}); });""")
    assert state.get("error") is None, state
    assert state["ready"] >= 2 and state["duration"] == pytest.approx(2.0, abs=0.1)

    # review: confirm the first flagged recording, dismiss the second
    _keys(browser, "1")
    _keys(browser, "n")
    wait_for(browser, lambda: _title(browser) == names[1], what="second flagged")
    _keys(browser, "2")
    assert "1 confirmed leak, 1 not a leak, 0 unsure" in text(browser, "#review-count")
    browser.find_element("id", "export").click()
    exported = browser.downloads / "labels.csv"
    wait_for(browser, exported.exists, what="labels.csv download")
    wait_for(browser, lambda: exported.read_text().count("\n") == 3, what="complete file")
    expected = [{"path": str(Path(leaks[0]["path"]).resolve()), "label": "LEAK"},
                {"path": str(Path(leaks[1]["path"]).resolve()), "label": "NOLEAK"}]
    assert read_csv(exported) == expected  # in the survey's order
    assert exported.read_text().startswith("path,label\n")
    found = discover(exported)  # the manifest build (and learn) read
    assert found.layout == "manifest" and [(x.path, x.label) for x in found.sources] == [
        (r["path"], r["label"]) for r in expected]

    # the marks survive a reload
    browser.refresh()
    wait_for(browser, lambda: browser.execute_script(
        "return document.body.getAttribute('data-ready')") == "1", what="reload")
    assert "1 confirmed leak, 1 not a leak, 0 unsure" in text(browser, "#review-count")
    _select(browser, "f-review", "leak")
    assert _count(browser) == 1
    assert text(browser, "#table tbody tr td:nth-child(1)") == names[0]
    _select(browser, "f-review", "noleak")
    assert text(browser, "#table tbody tr td:nth-child(1)") == names[1]
    _select(browser, "f-review", "")

    # ... and come back from the exported CSV in a browser that has forgotten them
    browser.execute_script("window.localStorage.clear()")
    browser.refresh()
    wait_for(browser, lambda: "0 confirmed leak" in text(browser, "#review-count"),
             what="marks forgotten")
    browser.find_element("id", "import").send_keys(str(exported))
    wait_for(browser, lambda: "1 confirmed leak, 1 not a leak" in text(browser,
                                                                       "#review-count"),
             what="marks imported")
    assert "imported 2 mark(s)" in text(browser, "#review-message")


def test_missing_files_and_names_without_metadata(survey: Survey, browser, tmp_path: Path
                                                  ) -> None:
    # the survey's recordings under plain names (no sensor or timestamp), one deleted
    rec = tmp_path / "plain"
    rec.mkdir()
    flagged = [r for r in survey.rows if r["decision"] == "LEAK"]
    rows = []
    for n, r in enumerate(survey.rows):
        shutil.copy(r["path"], rec / f"night{n:03d}.wav")
        rows.append({**r, "path": str(rec / f"night{n:03d}.wav"), "sensor_id": "",
                     "recording_id": "", "timestamp": "", "gain_db": ""})
    gone = survey.rows.index(flagged[0])
    Path(rows[gone]["path"]).unlink()
    predictions = tmp_path / "p.csv"
    with predictions.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    html = tmp_path / "r.html"
    build_report(predictions, html, ReportConfig(workers=1))
    load(browser, html)
    assert "no sensor id in their file name" in text(browser, "#sensor-note")
    assert not browser.find_element("id", "sensor-body").is_displayed()
    assert "Model unknown" in text(browser, "#model-card")  # hand-made file: no info file
    assert text(browser, "#sum-recordings b") == str(len(rows))
    _keys(browser, "n")
    assert _title(browser) == f"night{gone:03d}.wav"
    assert "missing" in text(browser, "#audio-note")
    assert "Cannot read the recording" in text(browser, "#detail-spectrogram")
    _keys(browser, "n")
    wait_for(browser, lambda: browser.find_elements("css selector", "#detail-audio audio"),
             what="the next flagged recording's player")


@pytest.mark.slow
def test_ten_thousand_recordings_open_and_filter(browser, tmp_path: Path) -> None:
    predictions = ten_thousand(tmp_path)
    rows = read_csv(predictions)
    html = tmp_path / "big.html"
    summary = build_report(predictions, html, ReportConfig(workers=1))
    assert summary["missing_audio"] == summary["leaks"]  # no such files: rows kept anyway
    opened = load(browser, html)
    assert _count(browser) == len(rows) == 10_000
    assert len(browser.find_elements("css selector", "#table tbody tr")) == 100  # one page
    start = time.perf_counter()
    _select(browser, "f-decision", "LEAK")
    assert _count(browser) == sum(r["decision"] == "LEAK" for r in rows)
    filtered = time.perf_counter() - start
    browser.find_element("id", "f-search").send_keys("s0005~")
    wait_for(browser, lambda: _count(browser) == sum(
        r["decision"] == "LEAK" and "S0005~" in r["path"] for r in rows), what="search")
    _keys(browser, "n")
    assert _title(browser).startswith("S0005~")
    alerts = browser.find_elements("css selector", "#alerts tbody tr")
    assert alerts[0].get_attribute("data-sensor") in {f"S{s:04d}" for s in range(0, 200, 5)}
    print(f"\n10,000 recordings: {summary['bytes'] / 1e6:.1f} MB, opened in {opened:.2f} s, "
          f"decision filter {filtered * 1000:.0f} ms round trip "
          f"({browser.execute_script('return document.body.dataset.filterMs')} ms in page)")
