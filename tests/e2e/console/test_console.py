"""The web console in a real browser (Debian's headless Chromium through Selenium) against
`hartonomous up`: sign in, upload, search and open a provenance graph, keys created and
revoked, roles, the live overview under load, the loop's mode, and what it must never do:
run a stored script, talk to another host, or accept a state change without its CSRF token.
Every test saves screenshots in its own output directory."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait

from services.inference.tunables import MAX_WAIT_MS
from tests.e2e.gateway.support import KEY, Platform, eventually, running_platform
from tests.support.browser import Browser, browser

pytestmark = pytest.mark.timeout(600)

XSS = '<script>alert("doc")</script><img src=x onerror="alert(1)"> zqconsoleword'
SETTINGS = {
    "HARTONOMOUS_GENERATION_SLOTS": "0",
    "HARTONOMOUS_GATEWAY_RATE_PER_SECOND": "1000",
    "HARTONOMOUS_GATEWAY_RATE_BURST": "1000",
}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    data, logs = tmp_path_factory.mktemp("data") / "d", tmp_path_factory.mktemp("logs")
    with running_platform(data, logs, SETTINGS) as running:
        yield running


@pytest.fixture(scope="module")
def admin_key(platform: Platform) -> str:
    found = KEY.search(platform.banner)
    assert found, platform.banner
    return found.group(0)


@pytest.fixture
def chrome(tmp_path: Path) -> Iterator[Browser]:
    with browser(tmp_path / "screenshots") as opened:
        yield opened
        print(f"screenshots: {opened.shots}")


def wait(driver: WebDriver, timeout: float = 30) -> WebDriverWait[WebDriver]:
    return WebDriverWait(driver, timeout)


def sign_in(chrome: Browser, platform: Platform, key: str) -> None:
    chrome.driver.get(f"{platform.url}/console/")
    field = wait(chrome.driver).until(ready.visibility_of_element_located((By.ID, "api-key")))
    field.send_keys(key)
    chrome.driver.find_element(By.CSS_SELECTOR, "#sign-in-form button").click()
    wait(chrome.driver).until(ready.visibility_of_element_located((By.ID, "nav")))


def open_page(chrome: Browser, page: str) -> None:
    chrome.driver.find_element(By.CSS_SELECTOR, f'#nav a[data-page="{page}"]').click()
    wait(chrome.driver).until(
        ready.presence_of_element_located(
            (By.CSS_SELECTOR, f'#nav a[data-page="{page}"][aria-current]')
        )
    )


def behaved(chrome: Browser, platform: Platform) -> None:
    """No dialog opened (no stored script ran), no script error, no host but the gateway."""
    try:
        text = chrome.driver.switch_to.alert.text
    except NoAlertPresentException:
        text = None
    assert text is None, f"a script from stored content ran: alert({text!r})"
    assert chrome.errors() == []
    assert chrome.hosts() == {platform.url.removeprefix("http://")}, chrome.requests


@contextmanager
def steady_load(
    platform: Platform, key: str, path: str, body: dict[str, Any], clients: int = 1
) -> Iterator[None]:
    """`clients` threads posting `body` to `path` back to back while the block runs."""
    stop = threading.Event()

    def client() -> None:
        with platform.client(key) as http:
            while not stop.is_set():
                http.post(path, json=body)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def configure(platform: Platform, key: str, settings: dict[str, Any], reason: str) -> None:
    with platform.client(key) as http:
        for name, value in settings.items():
            put = http.put(f"/v1/admin/config/{name}", json={"value": value, "reason": reason})
            assert put.status_code == 200, put.text


def test_sign_in_upload_search_and_open_the_provenance_graph(
    chrome: Browser, platform: Platform, admin_key: str, tmp_path: Path
) -> None:
    sign_in(chrome, platform, admin_key)
    chrome.screenshot("1-signed-in-overview")
    open_page(chrome, "documents")
    document = tmp_path / "<img src=x onerror=alert(2)>.txt"
    document.write_text(f"The console stores this page. {XSS}\n" * 20)
    chrome.driver.find_element(By.CSS_SELECTOR, 'input[type="file"]').send_keys(str(document))
    chrome.driver.find_element(By.CSS_SELECTOR, "textarea").send_keys('{"note": "<b>bold?</b>"}')
    chrome.driver.find_element(By.CSS_SELECTOR, "#view form button[type=submit]").click()
    stored = wait(chrome.driver).until(
        ready.visibility_of_element_located((By.CSS_SELECTOR, "p.ok"))
    )
    assert "stored" in stored.text and "chunks" in stored.text
    listed = wait(chrome.driver).until(
        ready.visibility_of_element_located((By.CSS_SELECTOR, "#view table"))
    )
    assert "<img src=x onerror=alert(2)>.txt" in listed.text  # the name, as text
    chrome.screenshot("2-uploaded")

    open_page(chrome, "search")
    Select(chrome.driver.find_element(By.NAME, "mode")).select_by_value("sparse")

    def top_hit() -> bool | None:  # the index follows the log: ask until it has the text
        query = chrome.driver.find_element(By.NAME, "query")
        query.clear()
        query.send_keys("zqconsoleword <script>alert(3)</script>")
        chrome.driver.find_element(By.CSS_SELECTOR, "form[role=search] button").click()
        time.sleep(0.5)
        return True if chrome.driver.find_elements(By.CSS_SELECTOR, ".results li") else None

    eventually(top_hit, timeout=60, every=1)
    snippet = chrome.driver.find_element(By.CSS_SELECTOR, ".results .snippet").text
    assert '<script>alert("doc")</script>' in snippet  # shown as text, never run
    chrome.driver.find_element(By.CSS_SELECTOR, ".open-provenance").click()
    graph = wait(chrome.driver).until(
        ready.visibility_of_element_located((By.CSS_SELECTOR, "svg.graph"))
    )
    assert len(graph.find_elements(By.CSS_SELECTOR, "g.node")) >= 2
    assert graph.find_elements(By.CSS_SELECTOR, "g.edge")
    explain = chrome.driver.find_element(By.CSS_SELECTOR, ".explain").text
    assert explain.strip()
    before = graph.get_dom_attribute("viewBox")
    chrome.driver.find_element(By.CSS_SELECTOR, 'button[aria-label="Zoom in"]').click()
    assert graph.get_dom_attribute("viewBox") != before
    chrome.screenshot("3-provenance-graph")
    behaved(chrome, platform)


def test_a_key_is_shown_once_works_and_is_refused_once_revoked(
    chrome: Browser, platform: Platform, admin_key: str
) -> None:
    sign_in(chrome, platform, admin_key)
    open_page(chrome, "tenants")
    name = chrome.driver.find_element(By.NAME, "name")
    name.send_keys("console-tenant")
    name.submit()
    wait(chrome.driver).until(
        ready.text_to_be_present_in_element((By.ID, "keys"), "Keys of console-tenant")
    )
    Select(chrome.driver.find_element(By.CSS_SELECTOR, "#keys select")).select_by_value("reader")
    chrome.driver.find_element(By.CSS_SELECTOR, "#keys form button").click()
    secret = wait(chrome.driver).until(ready.visibility_of_element_located((By.ID, "new-key")))
    key = secret.get_attribute("value") or ""
    assert KEY.fullmatch(key), key
    chrome.screenshot("1-key-shown-once")
    with platform.client(key) as http:
        assert http.get("/v1/usage").status_code == 200
        revoke = chrome.driver.find_element(
            By.CSS_SELECTOR, '#keys button[aria-label^="Revoke key"]'
        )
        revoke.click()
        wait(chrome.driver).until(ready.text_to_be_present_in_element((By.ID, "keys"), "revoked"))
        assert not chrome.driver.find_elements(By.ID, "new-key")  # gone once the list redraws
        chrome.screenshot("2-key-revoked")
        assert http.get("/v1/usage").status_code == 401
    behaved(chrome, platform)


def test_an_admin_sees_another_tenants_usage_and_a_reader_is_refused(
    chrome: Browser, platform: Platform, admin_key: str
) -> None:
    tenant = platform.tenant("usage-tenant")
    writer = platform.key("usage-tenant", "writer")
    reader = platform.key("usage-tenant", "reader")
    with platform.client(writer) as http:
        created = http.post("/v1/atoms", json={"content": "usage of the other tenant"})
        assert created.status_code == 201, created.text
    quota = {"operation": "ingest", "limit": "1000000", "unit": "bytes", "period": "month"}
    with platform.client(admin_key) as http:
        assert http.put(f"/v1/admin/tenants/{tenant}/quota", json=quota).status_code == 200
    sign_in(chrome, platform, admin_key)
    open_page(chrome, "billing")
    pick = wait(chrome.driver).until(ready.visibility_of_element_located((By.ID, "billing-tenant")))
    Select(pick).select_by_value(tenant)

    def shown() -> bool | None:
        text = chrome.driver.find_element(By.ID, "view").text
        return (f"Tenant {tenant}" in text and "ingest (bytes)" in text) or None

    eventually(shown, timeout=60, every=1)
    chrome.screenshot("1-admin-sees-other-tenant")
    chrome.driver.find_element(By.ID, "sign-out").click()
    wait(chrome.driver).until(ready.visibility_of_element_located((By.ID, "api-key")))

    sign_in(chrome, platform, reader)
    pages = [
        a.get_attribute("data-page") for a in chrome.driver.find_elements(By.CSS_SELECTOR, "#nav a")
    ]
    assert "tenants" not in pages and "overview" not in pages and "search" in pages
    chrome.driver.get(f"{platform.url}/console/#/tenants")
    refused = wait(chrome.driver).until(
        ready.visibility_of_element_located((By.CSS_SELECTOR, ".error-box"))
    )
    assert "needs the admin role" in refused.text
    chrome.screenshot("2-reader-refused")
    with platform.client(reader) as http:
        assert http.get("/v1/usage", params={"tenant": "default"}).status_code == 403
        assert http.get("/v1/admin/tenants").status_code == 403
    behaved(chrome, platform)


def test_the_overview_moves_while_a_load_runs_and_weighs_little(
    chrome: Browser, platform: Platform, admin_key: str
) -> None:
    sign_in(chrome, platform, admin_key)
    chrome.driver.get("about:blank")
    chrome.driver.execute_cdp_cmd("Network.clearBrowserCache", {})  # a first visit's load
    chrome.drain_logs()
    chrome.received = 0
    started = time.perf_counter()
    chrome.driver.get(f"{platform.url}/console/#/overview")
    wait(chrome.driver).until(ready.presence_of_element_located((By.ID, "overview-updated")))
    interactive = time.perf_counter() - started
    chrome.drain_logs()
    first_load = chrome.received
    print(
        f"overview: first load {first_load / 1024:.1f} KiB, interactive in {interactive * 1000:.0f} ms"
    )
    assert first_load < 300 * 1024

    search = {"query": "console load", "mode": "sparse"}
    with steady_load(platform, admin_key, "/v1/search", search):

        def rate() -> str | None:  # read in the page: the table is redrawn every update
            found: str | None = chrome.driver.execute_script(
                "const cell = document.querySelector('[data-series$=\"POST /v1/search rps\"]');"
                " return cell ? cell.textContent : null;"
            )
            return found

        first = eventually(rate, timeout=60, every=1)
        eventually(lambda: (rate() not in (None, first)) or None, timeout=60, every=1)
    updates = int(
        chrome.driver.find_element(By.ID, "overview-updated").get_attribute("data-updates") or 0
    )
    assert updates >= 2
    chrome.screenshot("1-overview-live")
    behaved(chrome, platform)


def test_the_loop_page_switches_the_mode(
    chrome: Browser, platform: Platform, admin_key: str
) -> None:
    sign_in(chrome, platform, admin_key)
    open_page(chrome, "loop")
    mode = wait(chrome.driver).until(ready.visibility_of_element_located((By.ID, "loop-mode")))
    Select(chrome.driver.find_element(By.NAME, "mode")).select_by_value("advise")
    reason = chrome.driver.find_element(By.NAME, "reason")
    reason.send_keys("watch first")
    reason.submit()
    wait(chrome.driver).until(ready.text_to_be_present_in_element((By.ID, "loop-mode"), "advise"))
    assert mode is not None
    chrome.screenshot("1-loop-advise")
    with platform.client(admin_key) as http:
        assert http.get("/v1/admin/config/ooda.mode").json()["value"] == "advise"
    behaved(chrome, platform)


def batching_decisions(chrome: Browser) -> list[WebElement]:
    """The pending decisions the loop page shows about the batcher's wait."""
    shown = chrome.driver.find_elements(By.CSS_SELECTOR, "li.decision")
    return [d for d in shown if MAX_WAIT_MS in d.text]


def test_a_decision_the_loop_proposes_is_approved_with_the_button(
    chrome: Browser, platform: Platform, admin_key: str
) -> None:
    """The loop for real, made quick: one-second windows and a ten-window baseline. Under a
    steady Embed load an operator slows batching; the loop proposes the revert (the knob is
    the operator's for an hour, so it waits for an admin), approved here in the browser."""
    quick = {"ooda.mode": "off", "telemetry.interval_s": 1, "ooda.min_baseline_samples": 10}
    configure(platform, admin_key, quick, "quick")
    embed = {"input": "a steady stream of short questions", "model": "all-MiniLM-L6-v2"}
    with steady_load(platform, admin_key, "/v1/embeddings", embed, clients=4):
        time.sleep(20)  # the baselines form (the loop is off meanwhile: no wobble is news)
        configure(platform, admin_key, {"ooda.mode": "auto", MAX_WAIT_MS: 250}, "slow")
        sign_in(chrome, platform, admin_key)

        def pending() -> bool | None:
            open_page(chrome, "search")  # and back: the loop page reads the decisions anew
            open_page(chrome, "loop")
            wait(chrome.driver).until(ready.visibility_of_element_located((By.ID, "loop-mode")))
            return True if batching_decisions(chrome) else None

        eventually(pending, timeout=120, every=2)
    [decision] = batching_decisions(chrome)
    decision_id = decision.get_dom_attribute("data-decision")
    assert "250 → 5" in decision.text and "Evidence: latency_p95_ms" in decision.text
    chrome.screenshot("1-pending-decision")
    decision.find_element(By.CSS_SELECTOR, "input").send_keys("back to quick batches")
    decision.find_element(By.CSS_SELECTOR, "button.approve").click()
    wait(chrome.driver).until(
        ready.invisibility_of_element_located((By.CSS_SELECTOR, f'[data-decision="{decision_id}"]'))
    )
    chrome.screenshot("2-approved")
    with platform.client(admin_key) as http:
        approved = http.get("/v1/ooda/decisions", params={"status": "approved"}).json()
    [mine] = [d for d in approved if d["decision_id"] == decision_id]
    assert mine["resolution_reason"] == "back to quick batches"
    behaved(chrome, platform)


def test_a_phone_width_shows_every_page_of_a_reader(
    tmp_path: Path, platform: Platform, admin_key: str
) -> None:
    with browser(tmp_path / "screenshots", phone=True) as phone:
        sign_in(phone, platform, admin_key)
        for page in ("search", "documents", "models", "billing"):
            open_page(phone, page)
            wait(phone.driver).until(
                ready.visibility_of_element_located((By.CSS_SELECTOR, "#view h1"))
            )
            width, scrolled = phone.driver.execute_script(
                "return [window.innerWidth, document.documentElement.scrollWidth]"
            )
            assert width == 390 and scrolled <= width, page  # nothing pushes it sideways
            phone.screenshot(f"phone-{page}")
        assert phone.errors() == []


def test_the_session_cookie_and_the_csrf_token(platform: Platform, admin_key: str) -> None:
    with httpx.Client(base_url=platform.url, timeout=30) as http:
        page = http.get("/console/")
        assert page.status_code == 200
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert http.post("/console/session", json={"api_key": "hk_nope_nope"}).status_code == 401
        signed = http.post("/console/session", json={"api_key": admin_key})
        assert signed.status_code == 200, signed.text
        cookie = signed.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
        token = signed.json()["csrf_token"]
        assert http.get("/v1/usage").status_code == 200  # reads need no token
        body = {"content": "csrf probe"}
        refused = http.post("/v1/atoms", json=body)
        assert refused.status_code == 403 and refused.json()["type"].endswith(":csrf")
        forged = http.post("/v1/atoms", json=body, headers={"X-CSRF-Token": "0" * 64})
        assert forged.status_code == 403
        assert http.post("/v1/atoms", json=body, headers={"X-CSRF-Token": token}).status_code == 201
        assert http.delete("/console/session").status_code == 403  # signing out is a change too
        out = http.delete("/console/session", headers={"X-CSRF-Token": token})
        assert out.status_code == 204
        assert http.get("/v1/usage").status_code == 401
    with platform.client(admin_key) as bearer:  # API clients with a key need no token
        assert bearer.post("/v1/atoms", json={"content": "bearer"}).status_code == 201
