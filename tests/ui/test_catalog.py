"""What the dashboard lists: runs from results dirs and bundles, merged with the lineage store,
and a run the store knows whose results dir now holds another run."""

from __future__ import annotations

import json

from minikf.metadata.store import MetadataStore, RunRecord
from minikf.ui.catalog import scan


def _results(folder, run_id, **extra):
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({
        "run_id": run_id, "scenario": "s", "platform": "local", "status": "passed",
        "started": f"2026-01-0{run_id[-1]}T00:00:00", "schema_version": "1.1", **extra}))


def test_runs_bundles_and_the_store_merge_by_run_id(tmp_path):
    root = tmp_path / "results"
    _results(root / "a", "run1")
    bundle = root / "minikf-conformance-x"
    bundle.mkdir(parents=True)
    (bundle / "summary.json").write_text(json.dumps({
        "platform": "local", "started": "2026-01-05T00:00:00",
        "scenarios": [{"status": "passed"}, {"status": "skipped"}]}))
    _results(bundle / "local" / "s", "run2")
    (root / "a" / "logs").mkdir()
    _results(root / "a" / "logs" / "deep", "hidden")  # inside a run's logs: not a run
    (root / "broken").mkdir()
    (root / "broken" / "results.json").write_text("{not json")
    db = tmp_path / "m.db"
    with MetadataStore(db) as store:
        for rid, where in (("run1", root / "a"), ("run0", root / "a"), ("gone", tmp_path / "x")):
            store.save(RunRecord(rid, "s", "local", "passed", "2026-01-01T00:00:00",
                                 results_dir=str(where)))
    found = scan([root, tmp_path / "missing"], db)
    assert set(found.runs) == {"run1", "run2", "run0", "gone"}
    assert found.runs["run1"].record is not None and found.runs["run1"].path == (root / "a").resolve()
    assert found.runs["run2"].bundle == "minikf-conformance-x"
    assert found.runs["run0"].path is None and "now holds run run1" in found.runs["run0"].note
    assert found.runs["gone"].note == "its results dir is gone"
    assert found.bundles["minikf-conformance-x"].counts == {"passed": 1, "skipped": 1}
    assert any("broken" in p for p in found.problems)
    assert [r.run_id for r in found.sorted_runs()][:2] == ["run2", "run1"]


def test_the_store_is_only_read(tmp_path):
    db = tmp_path / "m.db"
    with MetadataStore(db) as store:
        store.save(RunRecord("r", "s", "local", "passed", "2026-01-01T00:00:00"))
    db.chmod(0o444)
    before = db.read_bytes()
    assert set(scan([], db).runs) == {"r"}
    assert db.read_bytes() == before
