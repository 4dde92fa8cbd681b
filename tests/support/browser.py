"""A real headless Chromium for the console's tests: Debian's `chromium` and its
`chromedriver`, installed from the distribution's packages when missing (never a browser
downloaded from anywhere else), driven through Selenium with its network log recorded."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

PACKAGES = ("chromium", "chromium-driver")


def installed() -> tuple[str, str]:
    """The browser and its driver, installed with apt-get when missing (the test setup's job)."""
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        done = subprocess.run(install, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"apt-get could not install {PACKAGES}: {done.stderr[-2000:]}"
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert browser and driver, "chromium or chromedriver is still missing after apt-get"
    return browser, driver


@dataclass
class Browser:
    driver: WebDriver
    shots: Path
    requests: list[str] = field(default_factory=list)  # every URL the page asked for
    received: int = 0  # bytes over the wire (encoded), since the last reset
    console: list[dict[str, Any]] = field(default_factory=list)

    def screenshot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def drain_logs(self) -> None:
        """Move what the browser logged since the last call into requests/received/console."""
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            params = message.get("params", {})
            if message["method"] == "Network.requestWillBeSent":
                self.requests.append(params["request"]["url"])
            elif message["method"] == "Network.loadingFinished":
                self.received += int(params.get("encodedDataLength", 0))
        self.console.extend(self.driver.get_log("browser"))

    def hosts(self) -> set[str]:
        self.drain_logs()
        return {
            urlsplit(u).netloc for u in self.requests if urlsplit(u).scheme in ("http", "https")
        }

    def errors(self) -> list[str]:
        """Script errors (an API's error answer, logged as a network error, is not one)."""
        self.drain_logs()
        return [
            e["message"]
            for e in self.console
            if e.get("level") == "SEVERE" and e.get("source") != "network"
        ]


@contextmanager
def browser(shots: Path, phone: bool = False) -> Iterator[Browser]:
    """A desktop window of 1280x800, or a 390-px-wide phone (emulated: a headless window is
    never narrower than 500 px)."""
    chromium, chromedriver = installed()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    if phone:
        metrics = {"width": 390, "height": 844, "pixelRatio": 3}
        options.add_experimental_option("mobileEmulation", {"deviceMetrics": metrics})
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,800",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-sync",
        "--metrics-recording-only",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    # The driver's path given: Selenium Manager never looks for (or downloads) one.
    driver = webdriver.Chrome(options=options, service=Service(chromedriver))
    shots.mkdir(parents=True, exist_ok=True)
    try:
        yield Browser(driver, shots)
    finally:
        driver.quit()
