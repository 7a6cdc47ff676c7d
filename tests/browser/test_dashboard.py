"""`minikf ui` in a real browser, against a real server on 127.0.0.1: the token is required,
then runs, a run's report, a comparison with curves overlaid, a model's lineage graph and what
is serving now."""

from __future__ import annotations

import os
import secrets
import threading
import time

import pytest
import requests

from minikf.runtime import running
from minikf.ui import listen
from minikf.ui.app import Settings, make_app
from tests.browser.charts import charts, drawn
from tests.browser.conftest import screenshot


@pytest.fixture(scope="module")
def dashboard(made, tmp_path_factory):
    """The dashboard's server in this process (uvicorn in a thread), over the session's results."""
    import uvicorn

    token = secrets.token_urlsafe(24)
    settings = Settings(token=token, dirs=[made["root"] / "results"], db=made["db"],
                        home=made["home"])
    sock = listen("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(make_app(settings), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", token
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_every_path_needs_the_token(dashboard, made):
    url, token = dashboard
    run = made["runs"][0]
    for path in ("/", "/api/runs", f"/runs/{run}/report.html", f"/runs/{run}/logs/predict.log",
                 "/compare", f"/lineage/{run}", "/running", "/bundles", "/assets/cytoscape.min.js"):
        assert requests.get(url + path, timeout=10).status_code == 401, path
        bad = requests.get(url + path, headers={"Authorization": "Bearer nope"}, timeout=10)
        assert bad.status_code == 403, path
    assert requests.post(f"{url}/login", json={"token": "nope"}, timeout=10).status_code == 403
    assert requests.get(url + "/", headers={"Host": "evil.example"}, timeout=10).status_code == 400
    assert requests.delete(f"{url}/api/runs", headers={"Authorization": f"Bearer {token}"},
                           timeout=10).status_code == 405
    found = requests.get(f"{url}/api/runs", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert found.status_code == 200
    assert set(made["runs"]) <= {r["run_id"] for r in found.json()}


def _wait(browser, script: str, timeout: float = 10):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout).until(lambda d: d.execute_script(script))


def test_runs_report_compare_lineage_and_running(browser, dashboard, made, monkeypatch):
    monkeypatch.setenv("MINIKF_HOME", str(made["home"]))  # the registry of what is serving
    url, token = dashboard
    good, short = made["runs"]
    browser.get(f"{url}/#token={token}")  # the fragment is never sent: the page posts it
    _wait(browser, "return document.querySelector('table.runs')")
    assert "token" not in browser.current_url
    assert "minikf_ui" not in browser.execute_script("return document.cookie")  # HttpOnly
    text = browser.find_element("tag name", "body").text
    assert good in text and short in text and "tiny-3" in text
    screenshot(browser, "ui-runs")

    browser.get(f"{url}/?status=failed")
    listed = browser.execute_script(
        "return [...document.querySelectorAll('table.runs tr td:nth-child(4)')].map(c => c.innerText)")
    assert short in listed and good not in listed

    browser.get(f"{url}/runs/{good}/")
    assert drawn(charts(browser)["evaluate-confusion"])
    browser.find_element("link text", "predict.log").click()
    assert browser.current_url == f"{url}/runs/{good}/logs/predict.log"

    browser.get(f"{url}/")
    browser.find_element("css selector", f'input[name="a"][value="{good}"]').click()
    browser.find_element("css selector", f'input[name="b"][value="{short}"]').click()
    browser.find_element("css selector", "#compare button").click()
    _wait(browser, "return document.querySelector('table.compare')")
    found = charts(browser)
    screenshot(browser, "ui-compare")
    loss = found["compare-train.loss"]
    assert drawn(loss) and loss["points"] == [8, 1]
    assert browser.find_element("css selector", "table.compare").text.count("evaluate.accuracy") == 1

    browser.get(f"{url}/lineage/{good}")
    kinds = _wait(browser, "return window.minikfGraph && window.minikfGraph.nodes()"
                           ".map(n => n.data('kind'))")
    assert {"data", "run", "model", "served"} <= set(kinds)
    assert _wait(browser, "return window.minikfGraph.edges().length") >= 3
    screenshot(browser, "ui-lineage")

    entry = running.register("model", os.getpid(), "http://127.0.0.1:9/", model="fashion-mnist",
                             model_dir=str(made["journeys"][0]) + "/model", platform="minikf serve")
    try:
        browser.get(f"{url}/running")
        served = browser.find_element("css selector", "table.served").text
        assert "fashion-mnist" in served and "http://127.0.0.1:9/" in served
        screenshot(browser, "ui-running")
    finally:
        running.unregister(entry)
