"""A run's report.html in a real browser: the charts draw real data, the class names show,
the images load and every link leads to a file, also after the results dir has moved."""

from __future__ import annotations

import shutil
from pathlib import Path

from minikf.workload.model import CLASSES
from tests.browser.charts import charts, drawn
from tests.browser.conftest import screenshot

LINKS_JS = "return [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))"


def test_how_training_went_what_gets_confused_and_where_the_time_went(browser, made):
    browser.get((Path(made["journeys"][0]) / "report.html").as_uri())
    found = charts(browser)
    screenshot(browser, "report")
    assert drawn(found["timeline"]) and found["timeline"]["points"] == [6]  # six steps
    for name in ("loss", "accuracy", "images_per_s", "seconds"):
        chart = found[f"train-{name}"]
        assert drawn(chart), name
        assert chart["points"][:3] == [8, 8, 8]  # all workers, worker 0, worker 1: 8 epochs
        assert chart["labels"][:3] == ["all workers", "worker 0", "worker 1"]
    assert "test accuracy (evaluate)" in found["train-accuracy"]["labels"]
    heat = found["evaluate-confusion"]
    assert drawn(heat) and heat["points"] == [100]
    assert heat["x"] == CLASSES and heat["y"] == CLASSES  # the class names, on both axes
    latency = found["predict-latency"]
    assert drawn(latency) and latency["labels"] == ["V1", "V2"] and sum(latency["sums"]) == 200
    images = browser.execute_script(
        "return [...document.querySelectorAll('#evaluate-misclassified img')]"
        ".map(i => [i.complete, i.naturalWidth])")
    assert images and all(ok and width == 28 for ok, width in images)
    text = browser.find_element("tag name", "body").text
    assert "Ankle boot" in text and "predicted" in text and "Most confused" in text


def test_every_link_works_from_a_moved_results_dir(browser, made, tmp_path):
    moved = tmp_path / "elsewhere" / "journey"
    shutil.copytree(made["journeys"][0], moved)
    browser.get((moved / "report.html").as_uri())
    links = browser.execute_script(LINKS_JS)
    assert any(h.startswith("logs/train-worker-0") for h in links)
    assert all(not h.startswith(("/", "file:", "http")) for h in links), links
    assert all((moved / h).exists() for h in links), [h for h in links if not (moved / h).exists()]
    browser.find_element("link text", "predict.log").click()
    assert browser.current_url == (moved / "logs" / "predict.log").as_uri()
