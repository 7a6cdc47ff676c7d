"""report.html without a browser: self-contained, numbers rounded for people, and the vendored
chart library byte-identical to its npm release (the browser tests look at the pages drawn)."""

from __future__ import annotations

import hashlib
import re

import pytest

from minikf.results import RunResult, StepResult
from minikf.results.html import render
from minikf.results.page import ASSETS, SCRIPTS, metric, seconds

VENDORED = {"chart.umd.min.js": "87364cc2b2a76a6684929e7d6b80b18a897794db38400caff1fcf1791c6925d2",
            "chartjs-chart-matrix.min.js": "7e0cafdcfed5636319fb779f209230d38b6a3703b4b5f462ecb501fc6008f661",
            "chartjs-plugin-datalabels.min.js":
                "20c08f3d9c6d2ef76df6d6a6f1127c0013339fe32add24222276c398c6308c38"}


def test_the_vendored_scripts_are_the_released_files_with_their_licenses():
    assert set(SCRIPTS) == set(VENDORED)
    for name, sha in VENDORED.items():
        assert hashlib.sha256((ASSETS / name).read_bytes()).hexdigest() == sha, name
    licenses = {p.name for p in ASSETS.glob("LICENSE*")}
    assert len(licenses) == 3 and all("MIT" in (ASSETS / n).read_text() for n in licenses)


@pytest.mark.parametrize(("name", "value", "shown"), [
    ("accuracy", 0.7733333333333333, "77.3 %"), ("p95_ms", 3.14159, "3.14 ms"),
    ("images_per_s", 1234.5678, "1,235 images/s"), ("duration_s", 75.2, "1 min 15 s"),
    ("loss", 0.123456789, "0.123"), ("files", 4, "4"), ("bytes", 378_675, "369.8 KiB"),
    ("errors", 0.0, "0"), ("ok", True, "True"),
])
def test_numbers_are_rounded_for_people(name, value, shown):
    assert metric(name, value) == shown


def test_seconds_read_like_a_person_says_them():
    assert [seconds(s) for s in (0.123, 12.34, 125, 3725)] == ["0.12 s", "12.3 s", "2 min 05 s",
                                                                "1 h 02 min"]


def test_the_page_needs_no_network_and_shows_what_ran(tmp_path):
    run = RunResult("r1", "s", "kubernetes", "failed", started="2026-01-01T00:00:00",
                    versions={"minikf": "0.1.0", "kfp": "2.7.0"},
                    platform_info={"kubernetes": "v1.24.17", "components": {"kserve": "v0.14.1"}},
                    steps=[StepResult("train", "train", "passed", "2026-01-01T00:00:01.000", 2.5,
                                      metrics={"accuracy": 0.5, "workers": 2},
                                      series={"loss": [2.0, 1.0], "rank0.loss": [2.1, 1.1]},
                                      log=str(tmp_path / "logs" / "train.log")),
                           StepResult("evaluate", "evaluate", "failed", "2026-01-01T00:00:04.000", 1,
                                      message="expected accuracy >= 0.9, got <script>",
                                      outputs={"classes": ["cat", "dog"], "confusion": [[3, 1], [0, 4]]},
                                      gone={"data_dir": "/tmp/minikf-x/data"})])
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "train.log").write_text("ok")
    page = render(run, tmp_path)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//|@import|url\((https?:)?//""", page)
    assert '<a href="logs/train.log">' in page
    assert "v1.24.17" in page and "components.kserve" in page and "v0.14.1" in page
    assert "got &lt;script&gt;" in page and "<script>" not in page.split("got ")[1][:20]
    assert "50.0 %" in page and "not kept: /tmp/minikf-x/data" in page
    assert '"labels":["cat","dog"]' in page and "dog → cat" not in page and "cat → dog: 1" in page
    assert '"label":"worker 0"' in page
