"""A real headless browser for the dashboard tests: Debian's Chromium driven
by Selenium through Debian's chromedriver (scripts/bootstrap.sh installs
both). Flags keep Chromium off the network (it would try Google's hosts)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@contextlib.contextmanager
def chromium(width: int = 1400, height: int = 1800):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="chromium-test-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def chart_traces(driver, element_id: str) -> list[dict]:
    """The traces plotly drew in a dcc.Graph: [{'name', 'y'}] read from the
    rendered plot's own data (what the chart shows, not what was sent)."""
    return driver.execute_script(
        "const gd = document.querySelector(arguments[0] + ' .js-plotly-plot');"
        "if (!gd || !gd.data) return null;"
        "return gd.data.map(t => ({name: t.name, y: Array.from(t.y || [])}));", f"#{element_id}")


def rendered_bars(driver, element_id: str) -> int:
    """How many bar shapes the chart's SVG holds (drawn, not only data)."""
    return driver.execute_script(
        "return document.querySelectorAll(arguments[0] + ' .js-plotly-plot g.point path').length;", f"#{element_id}")
