"""Where the tests find the repository's own files."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
SAMPLE = DATA / "fashion-mnist-sample"
SCENARIOS = ROOT / "scenarios"
