"""Benchmark: a 10,000-recording survey report in a headless browser.

Writes the report of a generated 10,000-row predictions file (200 sensors over 50 nights;
no audio files, so no media), opens it in headless Chromium (Debian's ``chromium`` and
``chromium-driver``, as the tests) and times, as medians of ``--repeats``:

* opening the page until its script has drawn everything;
* a filter action (decision = LEAK; and typing a search), in the page, layout included;
* the reference, measured in the same page: the same filter drawing every matching row into
  one plain table, as a report without paging would.

Run from the repository root (it uses tests/browser.py to drive the browser):

    python -m benchmarks.report [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from leakhunter.config import ReportConfig
from leakhunter.report import build_report
from tests.helpers.browser import load, open_browser
from tests.helpers.survey import ten_thousand

# Set the filters, let the page redraw, force layout; the elapsed milliseconds.
FILTER = """
var t0 = performance.now();
var d = document.getElementById('f-decision'), q = document.getElementById('f-search');
d.value = arguments[0]; d.dispatchEvent(new Event('change'));
q.value = arguments[1]; q.dispatchEvent(new Event('input'));
document.body.offsetHeight;
return [performance.now() - t0, Number(document.getElementById('match-count').textContent)];
"""

# The reference: the same filter over the same embedded data, every match drawn as a row.
UNPAGED = """
var D = window.__survey || (window.__survey =
    JSON.parse(document.getElementById('survey-data').textContent));
var t0 = performance.now();
var want = arguments[0], q = arguments[1].toLowerCase(), dec = D.columns.indexOf('decision');
var show = ['path', 'sensor_id', 'timestamp', 'decision', 'leak_probability',
            'vote_fraction', 'status'].map(function (c) { return D.columns.indexOf(c); });
var body = document.createElement('tbody'), n = 0;
D.rows.forEach(function (r) {
  if (want && r[dec] !== want) return;
  if (q && String(r[0]).toLowerCase().indexOf(q) < 0) return;
  var tr = document.createElement('tr');
  show.forEach(function (k) { var td = document.createElement('td');
                              td.textContent = r[k] === null ? '' : String(r[k]);
                              tr.appendChild(td); });
  body.appendChild(tr); n++;
});
var table = document.getElementById('reference') || document.createElement('table');
table.id = 'reference'; table.textContent = ''; table.appendChild(body);
document.body.appendChild(table);
document.body.offsetHeight;
return [performance.now() - t0, n];
"""


def median_ms(driver, script: str, decision: str, query: str, repeats: int
              ) -> tuple[float, int]:
    times, count = [], 0
    for _ in range(repeats):
        driver.execute_script(script, "", "")  # back to everything between runs
        ms, count = driver.execute_script(script, decision, query)
        times.append(ms)
    return statistics.median(times), count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=10_000,
                        help="rows of the generated survey (default: 10000)")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs each (default: 7)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="leakhunter-bench-report-") as tmp:
        work = Path(tmp)
        predictions = ten_thousand(work, args.recordings)
        start = time.perf_counter()
        summary = build_report(predictions, work / "big.html", ReportConfig(workers=1))
        built = time.perf_counter() - start
        print(f"{summary['recordings']} recordings, {summary['sensors']} sensors: report "
              f"{summary['bytes'] / 1e6:.1f} MB written in {built:.1f} s")
        driver = open_browser(work)
        try:
            opened = statistics.median(load(driver, work / "big.html")
                                       for _ in range(args.repeats))
            print(f"open until drawn: median {opened * 1000:.0f} ms")
            for what, decision, query in (("decision = LEAK", "LEAK", ""),
                                          ("search 's0005~'", "", "s0005~")):
                ours, n = median_ms(driver, FILTER, decision, query, args.repeats)
                ref, n_ref = median_ms(driver, UNPAGED, decision, query, args.repeats)
                assert n == n_ref, (n, n_ref)
                print(f"filter {what:<17} {n:>5} matches: paged table {ours:6.1f} ms, "
                      f"unpaged table {ref:7.1f} ms: {ref / ours:5.1f}x faster")
        finally:
            driver.quit()


if __name__ == "__main__":
    main()
