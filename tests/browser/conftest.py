"""Browser tests: Debian's chromium driven headless by selenium, over what minikf wrote.

One session makes the results once (two short real Fashion-MNIST runs and a small two-platform
conformance bundle), shared by the xdist workers through a file lock; each test looks at a page
the way a person would and keeps a screenshot in SCREENSHOTS (named at the end of the run).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from tests.paths import ROOT, SCENARIOS

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
SCREENSHOTS = Path(os.environ.get("MINIKF_SCREENSHOTS", ROOT / "results" / "screenshots"))
# --remote-debugging-pipe: chromedriver talks to chromium over a pipe, so the browser opens no
# DevTools port (an open endpoint the socket audit would rightly flag).
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
         "--disable-dev-shm-usage", "--remote-debugging-pipe", "--window-size=1300,1000")
TINY = """name: tiny-{n}
steps:
  - {{name: work, kind: command, args: {{argv: [python, -c, "import time; time.sleep(0.{n})"]}}}}
"""
NEEDS_GPU = "name: needs-gpu\nrequires: [gpu]\nsteps:\n  - {name: a, kind: command, args: {argv: [x]}}\n"


def _missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            return f"{path} is not installed (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="module")
def browser():
    """One headless chromium per test module, gone before other tests run in this worker
    (whose audits see this process's children); in CI a missing browser fails, never skips."""
    missing = _missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="minikf-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(driver, name: str) -> Path:
    """The whole page, as tall as it is, into SCREENSHOTS/name.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1300, min(max(height, 600), 7000))
    time.sleep(0.3)  # the charts redraw at the new size on the next frames
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(1300, 1000)
    return path


def pytest_terminal_summary(terminalreporter):
    if SCREENSHOTS.is_dir() and any(SCREENSHOTS.glob("*.png")):
        terminalreporter.write_line(f"browser screenshots: {SCREENSHOTS}")


def _make_results(root: Path) -> dict:
    """Two real journeys, a good one (8 epochs) and one too short to pass its accuracy bound
    (1 epoch), and a bundle on two platforms, recorded in a lineage store of their own."""
    from concurrent.futures import ThreadPoolExecutor

    from minikf.engine.conformance import run_conformance
    from minikf.engine.runner import run_scenario
    from minikf.platforms.local import LocalPlatform
    from minikf.scenario import load_scenario

    journey = load_scenario(SCENARIOS / "fashion-mnist.yaml")
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda epochs: run_scenario(
            journey, LocalPlatform(), root / "results" / f"journey-{epochs}",
            {"epochs": epochs, "workers": 2}), (8, 1)))
    assert runs[0].ok, runs[0].message
    folder = root / "scenarios"
    folder.mkdir()
    tiny = [load_scenario(_write(folder / f"tiny-{n}.yaml", TINY.format(n=n))) for n in (1, 3)]
    tiny.append(load_scenario(_write(folder / "needs-gpu.yaml", NEEDS_GPU)))
    _, bundle = run_conformance(tiny, [LocalPlatform(), LocalPlatform(name="otherhost")],
                                root / "results")
    return {"runs": [r.run_id for r in runs],
            "journeys": [str(root / "results" / f"journey-{e}") for e in (8, 1)],
            "bundle": str(bundle).removesuffix(".tar.gz")}


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def made(tmp_path_factory) -> dict:
    """The session's results (made once for all xdist workers): paths, run ids, the store."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()  # under xdist, each worker's: the session's is above
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "browser-results"
    with FileLock(str(shared) + ".lock"):
        done = shared / "made.json"
        if not done.exists():
            shutil.rmtree(shared, ignore_errors=True)
            shared.mkdir()
            with pytest.MonkeyPatch.context() as env:
                env.setenv("MINIKF_HOME", str(shared / "home"))
                env.setenv("MINIKF_METADATA_DB", str(shared / "home" / "metadata.db"))
                info = _make_results(shared)
            done.write_text(json.dumps(info))
    info = json.loads(done.read_text())
    return {**info, "root": shared, "home": shared / "home", "db": shared / "home" / "metadata.db"}
