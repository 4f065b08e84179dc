"""Headless Debian Chromium driven by selenium through Debian's matching chromedriver.

Nothing is downloaded: selenium is told where both binaries are (``scripts/bootstrap.sh --dev``
installs the packages ``chromium`` and ``chromium-driver``). Missing binaries skip locally and
FAIL in CI, like the services in ``support.services``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from support.services import missing

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = Path(os.environ.get("NIGHTSHIFT_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("NIGHTSHIFT_CHROMEDRIVER", "/usr/bin/chromedriver"))
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def require_chromium() -> None:
    """Skip (local) or fail (CI) when the Debian packages are not installed."""
    absent = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if absent:
        missing(
            f"the headless browser ({', '.join(absent)} missing)",
            "`apt-get install chromium chromium-driver` (`scripts/bootstrap.sh --dev` does it as root)",
        )


@contextmanager
def chromium(width: int = 1600, height: int = 1000, log_path: Path | None = None) -> Iterator[WebDriver]:
    """A headless Chromium session; always quit, also when the test fails."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    require_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(log_path) if log_path else None)
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()
