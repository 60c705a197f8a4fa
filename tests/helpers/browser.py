"""A headless Chromium driven by selenium, for the report's browser tests.

Uses Debian's ``chromium`` and ``chromium-driver`` (``apt-get install chromium
chromium-driver``; ``.ci/run`` installs them). Without them the tests skip and say why.
Selenium is given both paths, so it never tries to download a browser or a driver.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver",)
DRIVER_PATHS = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")


def _find(names: tuple[str, ...], paths: tuple[str, ...] = ()) -> str | None:
    for name in names:
        if found := shutil.which(name):
            return found
    return next((p for p in paths if Path(p).is_file()), None)


def open_browser(downloads: Path) -> Any:
    """A headless Chromium saving downloads into ``downloads``; skips the test when
    selenium, the browser or its driver is missing."""
    webdriver = pytest.importorskip("selenium.webdriver",
                                    reason="selenium is not installed (pip install -e '.[test]')")
    from selenium.webdriver.chrome.service import Service

    binary, driver = _find(BROWSERS), _find(DRIVERS, DRIVER_PATHS)
    if not binary or not driver:
        pytest.skip("no headless browser: install Debian's chromium and chromium-driver "
                    "(apt-get install chromium chromium-driver) to run the report's "
                    "browser tests")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1600", "--autoplay-policy=no-user-gesture-required",
                "--mute-audio"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {
        "download.default_directory": str(downloads), "download.prompt_for_download": False})
    browser = webdriver.Chrome(options=options, service=Service(driver))
    browser.execute_cdp_cmd("Browser.setDownloadBehavior",
                            {"behavior": "allow", "downloadPath": str(downloads)})
    return browser


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """A fresh browser (fresh profile: no review marks) per test; downloads land in
    ``browser.downloads``."""
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = open_browser(downloads)
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()


def load(driver: Any, html: Path, timeout: float = 60.0) -> float:
    """Open ``html`` and wait until its script has drawn the page; returns the seconds."""
    start = time.perf_counter()
    driver.get(html.resolve().as_uri())
    wait_for(driver, lambda: driver.execute_script(
        "return document.body.getAttribute('data-ready')") == "1", timeout, "page ready")
    return time.perf_counter() - start


def wait_for(driver: Any, condition: Any, timeout: float = 10.0, what: str = "condition"
             ) -> Any:
    end = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            errors = driver.get_log("browser") if hasattr(driver, "get_log") else []
            raise AssertionError(f"timed out waiting for {what}; browser log: {errors}")
        time.sleep(0.05)


def text(driver: Any, css: str) -> str:
    return driver.find_element("css selector", css).text


def screenshot(report: Path, out: Path, width: int = 1400, width_out: int = 1000) -> Path:
    """Save a small PNG of ``report`` (the README's docs/images/report.png): the summary,
    the top of the sensor grid, and the recordings table with its first flagged recording
    open, stacked, ``width_out`` pixels wide."""
    import io
    import tempfile

    from PIL import Image

    with tempfile.TemporaryDirectory() as downloads:
        driver = open_browser(Path(downloads))
        try:
            load(driver, report)
            driver.find_element("tag name", "body").send_keys("n")
            height = driver.execute_script("window.scrollTo(0, 0); "
                                           "return document.documentElement.scrollHeight")
            driver.set_window_size(width, height + 140)  # + the window's own chrome
            boxes = driver.execute_script("""
                function box(id) { var r = document.getElementById(id).getBoundingClientRect();
                                   return [r.top, r.bottom]; }
                return {summary: box('summary'), sensors: box('sensors'),
                        recordings: box('recordings')};""")
            png = driver.get_screenshot_as_png()
        finally:
            driver.quit()
    image = Image.open(io.BytesIO(png)).convert("RGB")
    scale = image.width / width  # device pixels per CSS pixel
    parts = [(0, boxes["summary"][1] + 8),
             (boxes["sensors"][0], min(boxes["sensors"][1], boxes["sensors"][0] + 420)),
             (boxes["recordings"][0], min(boxes["recordings"][1],
                                          boxes["recordings"][0] + 900))]
    crops = [image.crop((0, round(a * scale), image.width, round(b * scale))) for a, b in parts]
    sheet = Image.new("RGB", (image.width, sum(c.height for c in crops)), "white")
    y = 0
    for crop in crops:
        sheet.paste(crop, (0, y))
        y += crop.height
    sheet = sheet.resize((width_out, round(sheet.height * width_out / sheet.width)),
                         Image.LANCZOS)
    sheet.quantize(colors=96, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    return out


if __name__ == "__main__":
    # python -m tests.browser REPORT.html OUT.png (from the repository root)
    import sys

    saved = screenshot(Path(sys.argv[1]), Path(sys.argv[2]))
    print(f"wrote {saved} ({saved.stat().st_size / 1000:.0f} kB)")
