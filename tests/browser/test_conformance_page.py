"""A conformance bundle's index.html in a real browser: scenarios x platforms, what was skipped
and why, the charts, the publishable summary, and links into each run's report."""

from __future__ import annotations

from pathlib import Path

from tests.browser.charts import charts, drawn
from tests.browser.conftest import screenshot


def test_the_bundle_page_puts_platforms_side_by_side(browser, made):
    bundle = Path(made["bundle"])
    browser.get((bundle / "index.html").as_uri())
    found = charts(browser)
    screenshot(browser, "conformance")
    assert drawn(found["status-counts"], 500) and drawn(found["scenario-times"], 500)
    assert found["scenario-times"]["x"] or found["scenario-times"]["y"]
    rows = browser.execute_script(
        "return [...document.querySelectorAll('#matrix tr')].map(r => [...r.children]"
        ".map(c => c.innerText.trim().split(/\\s/)[0]))")
    assert rows[0] == ["scenario", "local", "otherhost"]
    assert {r[0]: r[1:] for r in rows[1:]} == {
        "tiny-1": ["passed", "passed"], "tiny-3": ["passed", "passed"],
        "needs-gpu": ["skipped", "skipped"]}
    summary = browser.find_element("id", "publishable").text
    assert "minikf conformance on local: 2 of 3 scenarios passed, 1 skipped" in summary
    assert "minikf conformance on otherhost: 2 of 3" in summary
    assert "platform otherhost lacks gpu" in browser.find_element("tag name", "body").text
    browser.find_element("css selector", 'a[href="otherhost/tiny-3/report.html"]').click()
    assert browser.find_element("tag name", "h1").text.startswith("tiny-3 on otherhost")
    assert drawn(charts(browser)["timeline"], 200)
