"""A real headless browser for the studio's end-to-end tests and its latency benchmark: Debian's
``chromium`` driven through ``chromium-driver`` by Selenium.

:func:`find_chromium` installs the two Debian packages when they are missing and this process may
(root with apt-get; ``.ci/run`` installs them up front), and otherwise says why no browser can be
had, so that a test can skip with that sentence.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BINARIES = ("chromium", "chromedriver")


def find_chromium(install: bool = True) -> tuple[str, str] | str:
    """``(browser, driver)`` paths, or the reason there is no browser."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    found = [shutil.which(b) for b in BINARIES]
    if None in found and install and shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run(["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600, check=False)
        found = [shutil.which(b) for b in BINARIES]
    if None in found:
        missing = [b for b, f in zip(BINARIES, found, strict=True) if f is None]
        return f"no headless browser: {', '.join(missing)} not found (apt-get install chromium chromium-driver)"
    return found[0], found[1]  # type: ignore[return-value]


@contextlib.contextmanager
def chromium(downloads: Path, *, width: int = 1280, height: int = 900) -> Iterator[Any]:
    """A headless Chromium whose downloads land in ``downloads``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_chromium()
    if isinstance(found, str):
        raise RuntimeError(found)
    browser, driver_path = found
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False,
                                              "safebrowsing.enabled": False})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Any, script: str, timeout: float = 60.0, *args: Any) -> Any:
    """Poll the page until ``script`` (a JavaScript expression's body, ``return ...``) is truthy."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: d.execute_script(script, *args))


def click(driver: Any, css: str, timeout: float = 30.0) -> None:
    """Click the element ``css`` names once the page has put it there: grids and results arrive by
    their own requests, so a click straight after the request that makes them would race it."""
    from selenium.webdriver.common.by import By

    wait_for(driver, "return document.querySelector(arguments[0])", timeout, css)
    driver.find_element(By.CSS_SELECTOR, css).click()


def wait_for_file(folder: Path, pattern: str, timeout: float = 30.0) -> Path:
    """A finished download in ``folder`` matching ``pattern`` (Chromium writes ``*.crdownload`` first)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [p for p in folder.glob(pattern) if not p.name.endswith(".crdownload")]
        if done:
            return max(done, key=lambda p: p.stat().st_mtime)
        time.sleep(0.05)
    raise TimeoutError(f"no download matching {pattern!r} in {folder} after {timeout} s: {list(folder.iterdir())}")
