"""The admin console end to end in headless Chromium: sign-in, every page, the actions.

One module on purpose: the world (Feast store, MLflow, two registered versions) is built
once per module. Tests run in file order and each signs in as the user it needs.
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pytest
import requests
from requests.adapters import HTTPAdapter
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver import Chrome as WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import CLIENT_LIMIT, Console, random_ids
from training import registry

pytestmark = pytest.mark.browser

WAIT_S = 60
# Page path -> an element that shows the page rendered with its data.
PAGES = {
    "/models": "#models-grid .ag-row",
    "/monitoring": "#mon-alerts .ag-row",
    "/scoring": "#score-account",
    "/explanations": "#exp-importance .bars",
    "/decisions": "#dec-pd-0 .main-svg",
    "/fairness": "#fair-groups .ag-row",
    "/health": "#health-materialised .ag-row",
    "/audit": "#audit-verify-status",
    "/users": "#users-grid .ag-row",
}


# --------------------------------------------------------------------------- helpers


def wait_for(driver: WebDriver, css: str, timeout: float = WAIT_S) -> None:
    WebDriverWait(driver, timeout).until(ec.presence_of_element_located((By.CSS_SELECTOR, css)))


def wait_for_text(driver: WebDriver, css: str, text: str, timeout: float = WAIT_S) -> str:
    """The element's text once it holds `text`, read inside the wait: a Plotly redraw can
    replace the element between a find and a read (a stale element)."""

    def holding(d: WebDriver) -> tuple[str] | Literal[False]:
        try:
            found = str(d.find_element(By.CSS_SELECTOR, css).text)
        except (NoSuchElementException, StaleElementReferenceException):
            return False
        return (found,) if text in found else False

    return WebDriverWait(driver, timeout).until(holding)[0]


def settle(driver: WebDriver, timeout: float = WAIT_S) -> None:
    """Until no Dash callback is pending, twice in a row."""
    script = "return document.querySelectorAll('[data-dash-is-loading=\"true\"]').length"
    deadline, quiet = time.monotonic() + timeout, 0
    while time.monotonic() < deadline and quiet < 2:
        quiet = quiet + 1 if driver.execute_script(script) == 0 else 0
        time.sleep(0.3)


def severe(driver: WebDriver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def login(driver: WebDriver, console: Console, name: str) -> None:
    # Signed out on the server first: a callback of the previous page still in flight could
    # otherwise set the previous user's cookie again after the cookies are deleted.
    driver.get(f"{console.url}/logout")
    driver.delete_all_cookies()
    driver.get(f"{console.url}/login")
    driver.find_element(By.ID, "username").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(console.password(name))
    click(driver, "#login-button")
    wait_for_text(driver, "#nav-user", name)
    severe(driver)  # start each test with an empty console log


def open_page(driver: WebDriver, console: Console, path: str, marker: str | None = None) -> None:
    driver.get(console.url + path)
    wait_for(driver, marker or PAGES[path.split("?", maxsplit=1)[0]])
    settle(driver)


def shoot(driver: WebDriver, artifacts: Path, name: str) -> None:
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1400, max(900, min(int(height) + 100, 6000)))
    driver.save_screenshot(str(artifacts / f"{name}.png"))
    driver.set_window_size(1400, 1800)


def click(driver: WebDriver, css: str) -> None:
    """Scroll the element to the middle of the window first: a long page hides it otherwise."""
    element = driver.find_element(By.CSS_SELECTOR, css)
    # behavior "instant": Bootstrap makes scrolling smooth, and a click mid-scroll misses.
    script = "arguments[0].scrollIntoView({block: 'center', behavior: 'instant'});"
    driver.execute_script(script, element)
    element.click()


def session_for(driver: WebDriver) -> requests.Session:
    http = requests.Session()
    for cookie in driver.get_cookies():
        http.cookies.set(cookie["name"], cookie["value"])
    return http


def upload(driver: WebDriver, path: Path) -> None:
    driver.find_element(By.CSS_SELECTOR, "#batch-upload input[type=file]").send_keys(str(path))


def csrf_header(http: requests.Session) -> dict[str, str]:
    return {"X-CSRFToken": str(http.cookies.get("_csrf_token"))}


USERS_GRID = {
    "output": "users-grid.rowData",
    "outputs": {"id": "users-grid", "property": "rowData"},
    "inputs": [{"id": "users-refresh", "property": "data", "value": 0}],
    "state": [],
    "changedPropIds": [],
}
AUDIT_ACTIONS = {
    "output": "audit-actions.rowData",
    "outputs": {"id": "audit-actions", "property": "rowData"},
    "inputs": [{"id": "audit-action-search", "property": "value", "value": None}],
    "state": [],
    "changedPropIds": [],
}
# What a signed-in person can run from the browser's console: a callback request of their own.
_POST_CALLBACK = """
const done = arguments[arguments.length - 1];
const token = document.cookie.match(/_csrf_token=([^;]+)/)[1];
fetch("/_dash-update-component", {
    method: "POST",
    headers: {"Content-Type": "application/json", "X-CSRFToken": token},
    body: arguments[0],
}).then(r => r.text().then(t => done([r.status, t])));
"""


def post_callback(driver: WebDriver, body: dict[str, Any]) -> tuple[int, str]:
    status, text = driver.execute_async_script(_POST_CALLBACK, json.dumps(body))
    return int(status), str(text)


class _FromAddress(HTTPAdapter):
    """Requests that leave from another loopback address: another client, to the server."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def form_login(http: requests.Session, console: Console, name: str, password: str) -> Any:
    page = http.get(f"{console.url}/login", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    form = {"username": name, "password": password, "csrf_token": token.group(1), "next": "/"}
    return http.post(f"{console.url}/login", data=form, timeout=30, allow_redirects=False)


# --------------------------------------------------------------------------- tests


def test_unauthenticated_access_redirects_to_login(driver: WebDriver, console: Console) -> None:
    driver.delete_all_cookies()
    driver.get(f"{console.url}/audit")
    assert "/login?next=/audit" in driver.current_url
    assert driver.find_element(By.ID, "login-button")
    assert requests.get(f"{console.url}/_dash-layout", timeout=10).status_code == 401
    dispatch = requests.post(f"{console.url}/_dash-update-component", json={}, timeout=10)
    assert dispatch.status_code == 401
    report = requests.get(f"{console.url}/reports/drift/20250101T000000Z/drift.html", timeout=10)
    assert report.status_code == 401 or "/login" in report.url


def test_wrong_password_is_refused(driver: WebDriver, console: Console) -> None:
    driver.delete_all_cookies()
    driver.get(f"{console.url}/login")
    driver.find_element(By.ID, "username").send_keys("alice")
    driver.find_element(By.ID, "password").send_keys("not her password")
    click(driver, "#login-button")
    assert "Wrong user name or password" in wait_for_text(driver, "#login-error", "Wrong")


def test_every_page_renders_without_console_errors(
    driver: WebDriver, console: Console, artifacts: Path
) -> None:
    login(driver, console, "alice")
    errors = {}
    for path, marker in PAGES.items():
        open_page(driver, console, path, marker)
        shoot(driver, artifacts, path.strip("/"))
        found = severe(driver)
        if found:
            errors[path] = found
    assert errors == {}


def test_drift_report_embeds_and_traversal_is_refused(
    driver: WebDriver, console: Console, artifacts: Path
) -> None:
    login(driver, console, "alice")
    open_page(driver, console, "/monitoring")
    click(driver, "#mon-reports .ag-center-cols-container .ag-row .ag-cell")
    wait_for(driver, "#mon-report-view iframe")
    frame = driver.find_element(By.CSS_SELECTOR, "#mon-report-view iframe")
    driver.switch_to.frame(frame)
    wait_for_text(driver, "#drift-report-title", "Drift report")
    driver.switch_to.default_content()
    shoot(driver, artifacts, "monitoring-report")
    http = session_for(driver)
    # Encoded, so the client does not resolve the dots itself; the server decodes them.
    for bad in ("%2e%2e/admin/users.db", "..%2f..%2fadmin%2fusers.db"):
        assert http.get(f"{console.url}/reports/{bad}", timeout=10).status_code == 404
    # An absolute path matches no report route at all: the app's index page, not the file.
    absolute = http.get(f"{console.url}/reports/%2fetc%2fpasswd", timeout=10)
    assert "root:" not in absolute.text
    assert severe(driver) == []


def test_promote_and_rollback_round_trip(
    driver: WebDriver, console: Console, artifacts: Path
) -> None:
    assert registry.show("champion").version == 2
    login(driver, console, "alice")
    open_page(driver, console, "/models")
    driver.find_element(By.ID, "models-rollback-why").send_keys("browser test: roll back")
    click(driver, "#models-rollback-open")
    wait_for(driver, ".modal.show #models-rollback-confirm")
    click(driver, "#models-rollback-confirm")
    wait_for_text(driver, "#models-message", "rolled back")
    assert registry.show("champion").version == 1

    settle(driver)
    driver.find_element(By.ID, "models-promote-why").send_keys("browser test: promote again")
    click(driver, "#models-promote-open")
    wait_for(driver, ".modal.show #models-promote-confirm")
    wait_for_text(driver, "#models-promote-body", "v2")  # visible once the modal fades in
    click(driver, "#models-promote-confirm")
    text = wait_for_text(driver, "#models-message", "is now the champion")
    assert "v2" in text and "gain" in text  # the gate's own summary
    assert registry.show("champion").version == 2
    shoot(driver, artifacts, "models-after-round-trip")
    done = [(a.action, a.outcome) for a in console.backends.actions.recent(20)]
    assert ("promote", "ok") in done and ("rollback", "ok") in done
    assert severe(driver) == []


def test_account_lookup_shows_waterfall(
    driver: WebDriver, console: Console, artifacts: Path
) -> None:
    login(driver, console, "victor")
    account = console.accounts[0]
    open_page(driver, console, f"/scoring?account={account}", "#score-waterfall .main-svg")
    card = driver.find_element(By.ID, "score-card").text
    assert account in card and "band" in card
    shoot(driver, artifacts, "scoring-lookup")
    assert severe(driver) == []


def test_explanation_and_counterfactual(
    driver: WebDriver, console: Console, artifacts: Path
) -> None:
    login(driver, console, "victor")
    account = console.accounts[1]
    open_page(driver, console, f"/explanations?account={account}", "#exp-counterfactual-card")
    wait_for(driver, "#exp-dependence .main-svg")
    text = driver.find_element(By.ID, "exp-counterfactual-card").text
    assert "probability" in text and "threshold" in text
    shoot(driver, artifacts, "explanations-account")
    assert severe(driver) == []


def test_batch_upload_produces_a_download(
    driver: WebDriver, console: Console, artifacts: Path, tmp_path: Path
) -> None:
    login(driver, console, "olga")
    ids = [*console.accounts, *random_ids(1)]
    source = tmp_path / "accounts.csv"
    pd.DataFrame({"account_id": ids}).to_csv(source, index=False)
    open_page(driver, console, "/scoring", "#batch-upload")
    upload(driver, source)
    wait_for(driver, "#batch-download")
    assert "5 of 6 accounts scored" in driver.find_element(By.ID, "batch-status").text
    shoot(driver, artifacts, "scoring-batch")
    href = driver.find_element(By.ID, "batch-download").get_attribute("href")
    response = session_for(driver).get(str(href), timeout=30)
    assert response.status_code == 200
    assert "attachment" in response.headers["Content-Disposition"]
    scores = pd.read_csv(io.StringIO(response.text))
    assert list(scores["account_id"].astype(str)) == ids
    assert set(scores.columns) >= {"probability", "band", "decision", "status"}
    assert scores["probability"].iloc[:5].between(0, 1).all()
    assert scores["status"].iloc[5] != "scored"
    assert ("batch_score", "ok") in [
        (a.action, a.outcome) for a in console.backends.actions.recent(20)
    ]
    # Someone else's results are not theirs to download.
    login(driver, console, "victor")
    assert session_for(driver).get(str(href), timeout=30).status_code == 403
    assert severe(driver) == []


def test_bad_upload_names_rows_and_columns(
    driver: WebDriver, console: Console, artifacts: Path, tmp_path: Path
) -> None:
    login(driver, console, "olga")
    wrong_column = tmp_path / "wrong.csv"
    wrong_column.write_text("acct,amount\nA1,3\n")
    open_page(driver, console, "/scoring", "#batch-upload")
    upload(driver, wrong_column)
    text = wait_for_text(driver, "#batch-error", "cannot be scored")
    assert "no column 'account_id'" in text and "acct, amount" in text

    blanks = tmp_path / "blanks.csv"
    blanks.write_text('account_id\nA1\n""\nbad id!\n')
    open_page(driver, console, "/scoring", "#batch-upload")
    upload(driver, blanks)
    text = wait_for_text(driver, "#batch-error", "cannot be scored")
    assert "empty on lines 3" in text and "lines 4" in text
    shoot(driver, artifacts, "scoring-bad-upload")
    assert severe(driver) == []


def test_viewer_sees_no_admin_actions(driver: WebDriver, console: Console) -> None:
    login(driver, console, "victor")
    nav = driver.find_element(By.CSS_SELECTOR, ".navbar").text
    assert "Users" not in nav and "Models" in nav
    open_page(driver, console, "/models")
    assert not driver.find_elements(By.ID, "models-promote-open")
    assert not driver.find_elements(By.ID, "models-rollback-open")
    open_page(driver, console, "/monitoring")
    assert not driver.find_elements(By.ID, "mon-ack")
    assert not driver.find_elements(By.ID, "mon-rule-save")
    open_page(driver, console, "/scoring")
    assert not driver.find_elements(By.ID, "batch-upload")
    driver.get(f"{console.url}/users")
    assert "may not open Users" in wait_for_text(driver, "#_pages_content", "may not")
    assert severe(driver) == []


def test_operator_acknowledges_and_resolves_an_alert(driver: WebDriver, console: Console) -> None:
    login(driver, console, "olga")
    open_page(driver, console, "/monitoring")
    click(driver, "#mon-alerts .ag-center-cols-container .ag-row .ag-cell")
    click(driver, "#mon-ack")
    wait_for_text(driver, "#mon-message", "acknowledged by olga")
    settle(driver)
    click(driver, "#mon-alerts .ag-center-cols-container .ag-row .ag-cell")
    click(driver, "#mon-resolve")
    wait_for_text(driver, "#mon-message", "resolved by olga")
    assert console.backends.monitoring().open_alerts() == []
    assert severe(driver) == []


def test_logout_ends_the_session(driver: WebDriver, console: Console) -> None:
    login(driver, console, "alice")
    click(driver, "#nav-logout")
    wait_for(driver, "#login-button")
    driver.get(f"{console.url}/models")
    try:
        wait_for(driver, "#login-button", timeout=10)
    except TimeoutException:
        pytest.fail("signed out, yet /models did not send the browser to the login page")


def test_the_console_renders_under_its_content_security_policy(
    driver: WebDriver, console: Console
) -> None:
    login(driver, console, "alice")
    open_page(driver, console, "/models")
    # Dash's own inline scripts run (allowed by hash): the pages' clientside callback sets
    # the title, and the grid is filled by callbacks.
    assert driver.title.startswith("Models")
    assert [m for m in severe(driver) if "Content Security Policy" in m] == []
    page = session_for(driver).get(f"{console.url}/models", timeout=10)
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "same-origin"
    # Script that markup injects is not run.
    ran = driver.execute_script(
        "var s = document.createElement('script'); s.textContent = 'window.injected = 1;';"
        "document.body.appendChild(s); return window.injected === 1;"
    )
    assert ran is False
    assert any("Content Security Policy" in m for m in severe(driver))


@pytest.fixture
def other_site(console: Console) -> Iterator[str]:
    """Another origin (localhost, its own port) whose page frames the console's /models."""
    page = f"<iframe id='victim' src='{console.url}/models'></iframe>".encode()

    class Framing(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *_: Any) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Framing)
    thread = threading.Thread(target=server.serve_forever, name="other-site", daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}/"
    finally:
        server.shutdown()


def test_another_site_cannot_frame_the_console(
    driver: WebDriver, console: Console, other_site: str
) -> None:
    login(driver, console, "alice")
    driver.get(other_site)
    wait_for(driver, "#victim")
    time.sleep(2)  # the frame's navigation, refused or not
    driver.switch_to.frame(driver.find_element(By.ID, "victim"))
    try:
        # Refused by the browser: the frame holds Chrome's error page, not the console.
        assert str(driver.execute_script("return document.URL")).startswith("chrome-error:")
        assert driver.find_elements(By.ID, "nav-user") == []
        assert driver.find_elements(By.ID, "login-button") == []
    finally:
        driver.switch_to.default_content()
        driver.get(f"{console.url}/logout")  # back on the console's origin, on a quiet page


def test_a_viewer_cannot_read_the_users_through_a_callback(
    driver: WebDriver, console: Console
) -> None:
    login(driver, console, "victor")
    open_page(driver, console, "/audit")
    status, text = post_callback(driver, USERS_GRID)
    assert status == 403 and "needs admin" in text and "alice" not in text
    assert post_callback(driver, AUDIT_ACTIONS)[0] == 200
    severe(driver)  # the refused request's own console line
    login(driver, console, "alice")
    status, text = post_callback(driver, USERS_GRID)
    assert status == 200 and '"victor"' in text and "last_login_at" in text


def test_a_cookie_copied_before_logout_is_refused_after_it(
    driver: WebDriver, console: Console
) -> None:
    login(driver, console, "victor")
    open_page(driver, console, "/audit")
    saved = session_for(driver)
    assert saved.get(f"{console.url}/_dash-layout", timeout=10).status_code == 200
    click(driver, "#nav-logout")
    wait_for(driver, "#login-button")
    page = saved.get(f"{console.url}/audit", timeout=10, allow_redirects=False)
    assert page.status_code == 302 and page.headers["Location"].startswith("/login")
    assert saved.get(f"{console.url}/_dash-layout", timeout=10).status_code == 401
    replay = saved.post(f"{console.url}/_dash-update-component", json=AUDIT_ACTIONS,
                        headers=csrf_header(saved), timeout=10)  # fmt: skip
    assert replay.status_code == 401


def test_one_client_failing_is_throttled_while_another_signs_in(
    driver: WebDriver, console: Console
) -> None:
    attacker = requests.Session()
    attacker.mount("http://", _FromAddress("127.0.0.2"))
    for _ in range(CLIENT_LIMIT):
        assert form_login(attacker, console, "alice", "not her password").status_code == 200
    throttled = form_login(attacker, console, "alice", console.password("alice"))
    assert throttled.status_code == 429 and "from your address" in throttled.text
    login(driver, console, "alice")  # the browser, from 127.0.0.1: signed in as ever
    open_page(driver, console, "/models")
    denied = [a for a in console.backends.actions.recent(50) if a.outcome == "denied"]
    assert any("127.0.0.2" in (a.detail or "") for a in denied)
    assert severe(driver) == []


def test_an_expired_session_sends_the_page_to_login(driver: WebDriver, console: Console) -> None:
    login(driver, console, "victor")
    open_page(driver, console, "/audit")
    driver.delete_cookie("collectwise_console")  # what expiry does to the browser's session
    click(driver, "#audit-verify-button")
    WebDriverWait(driver, WAIT_S).until(ec.url_contains("/login?next=%2Faudit"))
    assert driver.find_element(By.ID, "login-button")


def _seed_experiment(console: Console) -> dict[str, Any]:
    """An experiment report written by the real job: two arms, the challenger truly better."""
    from datetime import UTC, datetime

    import numpy as np

    from monitoring.experiment import ExperimentConfig, experiment_job

    rng = np.random.default_rng(5)
    y = rng.random(800) < 0.3
    strong, weak = y + rng.normal(0, 0.8, 800), y + rng.normal(0, 1.6, 800)
    # 200 accounts scored on four snapshots each; an account stays in its arm.
    account = np.repeat([f"A{i:04d}" for i in range(200)], 4)
    arm = np.repeat(np.where(rng.random(200) < 0.5, "challenger", "champion"), 4)
    p_challenger = 1 / (1 + np.exp(-strong))
    probability = np.where(arm == "challenger", p_challenger, 1 / (1 + np.exp(-weak)))
    joined = pd.DataFrame({
        "outcome": "matured", "account_id": account, "arm": arm, "default_30d": y.astype(int),
        "probability": probability, "decision": probability >= 0.5,
        "band": np.where(probability >= 0.5, "high", "low"),
        "model_version": np.where(arm == "challenger", 2, 1), "challenger_version": 2,
        "challenger_probability": p_challenger,
    })  # fmt: skip
    _, report = experiment_job(
        joined, {"champion": 1, "challenger": 2}, ExperimentConfig(),
        window_start=datetime(2025, 1, 1, tzinfo=UTC), window_end=datetime(2025, 4, 1, tzinfo=UTC),
        reports_dir=console.backends.paths.monitoring_reports_dir,
    )  # fmt: skip
    return report


def test_models_page_shows_the_latest_experiment_per_arm(
    driver: WebDriver, console: Console, artifacts: Path
) -> None:
    report = _seed_experiment(console)
    login(driver, console, "victor")
    open_page(driver, console, "/models", "#models-experiment .ag-row")
    summary = wait_for_text(driver, "#models-experiment-summary", report["verdict"]["result"])
    assert "paired" in summary and "outcomes still needed" in summary
    cells = driver.find_element(By.ID, "models-experiment").text
    for arm in ("champion", "challenger", "overall"):
        figures = report["overall"] if arm == "overall" else report["arms"][arm]
        assert arm in cells and str(round(figures["auc"]["auc"], 4)) in cells
    shoot(driver, artifacts, "models-experiment")
    assert severe(driver) == []


def test_decision_views_show_pd_ice_and_the_decision_map(
    driver: WebDriver, console: Console, artifacts: Path
) -> None:
    from admin_app.logic.decisions import DEFAULT_TOP, cutoffs, top_columns
    from admin_app.logic.explain import short_name
    from admin_app.lookups import decision_basis, decision_map
    from training.inspection import column_sentence

    login(driver, console, "victor")
    open_page(driver, console, "/decisions", f"#dec-pd-{DEFAULT_TOP - 1} .main-svg")
    wait_for(driver, "#dec-map .heatmaplayer")
    settle(driver)
    champion = registry.show("champion").version
    # What the page computed (the console's cache): the same basis, never a second fit.
    basis = decision_basis(console.backends, champion)
    top = top_columns(basis.importance, basis.x, DEFAULT_TOP)
    graphs = driver.find_elements(By.CSS_SELECTOR, "#dec-curves .js-plotly-plot")
    assert len(graphs) == DEFAULT_TOP
    titles = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#dec-curves .gtitle")]
    for column, title in zip(top, titles, strict=True):
        assert short_name(column) in title
        sentence = column_sentence(column, basis.model.feature_service)
        assert sentence is None or sentence[0] in title
    # Grey ICE lines and the red PD line in every plot.
    assert len(driver.find_elements(By.CSS_SELECTOR, "#dec-pd-0 .scatterlayer .trace")) == 2
    summary = driver.find_element(By.ID, "dec-summary").text
    assert f"v{champion}" in summary and f"over {len(basis.x)} reference accounts" in summary

    map_title = driver.find_element(By.CSS_SELECTOR, "#dec-map .gtitle").text
    assert short_name(top[0]) in map_title and short_name(top[1]) in map_title
    dmap = decision_map(console.backends, champion, top[0], top[1])
    crossed = [c for c in cutoffs(dmap) if c.on_map]
    drawn = driver.find_elements(By.CSS_SELECTOR, "#dec-map .contourlayer .contour")
    assert len(drawn) == len(crossed)
    assert f"{dmap.low_max:.3f}" in map_title and f"{dmap.medium_max:.3f}" in map_title
    shoot(driver, artifacts, "decisions")

    click(driver, "#dec-centred input")
    wait_for_text(driver, "#dec-pd-0 .g-ytitle", "change in probability")
    assert severe(driver) == []


def test_decision_views_say_why_a_version_has_none(driver: WebDriver, console: Console) -> None:
    login(driver, console, "victor")
    # v1 was registered without a drift reference: no accounts to average over.
    open_page(driver, console, "/decisions?version=1", "#dec-curves .alert")
    text = wait_for_text(driver, "#dec-curves", "No decision views for v1")
    assert "reference" in text and "Traceback" not in driver.page_source
    assert severe(driver) == []
