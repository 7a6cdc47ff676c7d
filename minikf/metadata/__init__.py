"""Metadata and lineage: which data, parameters, code and image produced which model and metrics.

A real store (SQLite, minikf/metadata/store.py) in a file the user keeps: $MINIKF_METADATA_DB,
else $MINIKF_HOME/metadata.db, else ~/.minikf/metadata.db. The engine records every run at its
end (minikf/metadata/lineage.py); `minikf runs list|show|compare` query it.
"""

from __future__ import annotations

import os
from pathlib import Path


def default_db_path() -> Path:
    if os.environ.get("MINIKF_METADATA_DB"):
        return Path(os.environ["MINIKF_METADATA_DB"]).expanduser()
    home = os.environ.get("MINIKF_HOME") or Path.home() / ".minikf"
    return Path(home).expanduser() / "metadata.db"
