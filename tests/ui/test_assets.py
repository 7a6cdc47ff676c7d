"""The dashboard's vendored graph library is the npm release, with its license."""

import hashlib

from minikf.ui.app import ASSETS


def test_cytoscape_is_the_released_file():
    digest = hashlib.sha256((ASSETS / "cytoscape.min.js").read_bytes()).hexdigest()
    assert digest == "71fa9ebec21a7ca2c40cff6aacc30d1f6464e363662ad4b2c197e1adc770cd94"  # 3.35.0
    assert "MIT" in (ASSETS / "LICENSE.cytoscape").read_text() or "Permission is hereby granted" in (
        ASSETS / "LICENSE.cytoscape").read_text()
