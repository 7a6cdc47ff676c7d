"""Image building pieces that need no Docker Engine: pins, content tags, mirror, wheel server."""

from __future__ import annotations

import subprocess
import sys

import requests

from minikf.images import base, build, engine, wheelhouse


def test_pins_are_the_installed_closure_with_extras():
    pins = wheelhouse.pinned_requirements()
    names = {p.split("==")[0] for p in pins}
    assert "torch==2.13.0+cpu" in pins or any(p.startswith("torch==2.13.0") for p in pins)
    assert "minikf" not in names  # the project goes in as its own wheel
    # kserve asks for uvicorn[standard]: the extra's packages must be in the wheelhouse too
    assert {"uvicorn", "httptools"} <= names
    assert all(p.count("==") == 1 for p in pins)
    # minikf's own list is the source tree's pyproject.toml, newer than an old editable install's
    assert any(r.startswith("kubeflow-kale") for r in wheelhouse.source_requirements())
    assert any(p.startswith("kubeflow-kale==") for p in pins)


def test_content_tag_changes_with_every_input_and_only_then():
    tag = build.content_tag("runtime", "FROM x", "sha256:1", "abc")
    assert tag == build.content_tag("runtime", "FROM x", "sha256:1", "abc")
    assert tag.startswith("minikf/runtime:")
    others = {build.content_tag("runtime", "FROM y", "sha256:1", "abc"),
              build.content_tag("runtime", "FROM x", "sha256:2", "abc"),
              build.content_tag("runtime", "FROM x", "sha256:1", "abd")}
    assert tag not in others and len(others) == 3


def test_source_hash_follows_the_workload_code(tmp_path):
    (tmp_path / "minikf" / "workload").mkdir(parents=True)
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    (tmp_path / "minikf" / "workload" / "w.py").write_text("A = 1\n")
    (tmp_path / "minikf" / "other.py").write_text("B = 1\n")
    whole, work = wheelhouse.source_hash(tmp_path), wheelhouse.source_hash(tmp_path, "minikf/workload")
    (tmp_path / "minikf" / "other.py").write_text("B = 2\n")
    assert wheelhouse.source_hash(tmp_path) != whole
    assert wheelhouse.source_hash(tmp_path, "minikf/workload") == work
    (tmp_path / "minikf" / "workload" / "w.py").write_text("A = 2\n")
    assert wheelhouse.source_hash(tmp_path, "minikf/workload") != work


def test_debian_mirror_from_deb822_and_one_line_sources(tmp_path, monkeypatch):
    monkeypatch.delenv("MINIKF_DEBIAN_MIRROR", raising=False)
    deb822 = tmp_path / "debian.sources"
    deb822.write_text("Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n"
                      "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\n")
    assert base.debian_mirror([deb822]) == "http://mirror.example/debian"
    one_line = tmp_path / "sources.list"
    one_line.write_text("deb [arch=amd64] http://other.example/debian bookworm main\n")
    assert base.debian_mirror([one_line]) == "http://other.example/debian"
    assert base.debian_mirror([tmp_path / "missing.list"]) == base.DEFAULT_MIRROR
    monkeypatch.setenv("MINIKF_DEBIAN_MIRROR", "http://local.example/deb/")
    assert base.debian_mirror([deb822]) == "http://local.example/deb"


def test_base_tag_is_a_function_of_the_recipe():
    assert base.base_tag("http://a/debian") == base.base_tag("http://a/debian")
    assert base.base_tag("http://a/debian") != base.base_tag("http://b/debian")
    assert base.base_tag("http://a/debian").startswith("minikf/base:bookworm-")


def test_wheelhouse_is_served_on_loopback_and_stops(tmp_path):
    (tmp_path / "x-1.0-py3-none-any.whl").write_bytes(b"wheel")
    with build.serve_directory(tmp_path) as url:
        assert url.startswith("http://127.0.0.1:")
        index = requests.get(url, timeout=5)
        assert "x-1.0-py3-none-any.whl" in index.text
        assert requests.get(url + "x-1.0-py3-none-any.whl", timeout=5).content == b"wheel"
    try:
        requests.get(url, timeout=2)
        raise AssertionError("the wheel server still answers after the build")
    except requests.ConnectionError:
        pass


def test_minikf_wheel_is_built_without_touching_the_work_tree(tmp_path):
    root = wheelhouse.project_root()
    before = {p.name for p in root.iterdir()}
    wheel = wheelhouse.build_minikf_wheel(root, tmp_path)
    assert wheel.name.startswith("minikf-") and wheel.suffix == ".whl"
    # Only what a wheel build makes is checked: tests in other xdist workers may add to the root.
    added = {p.name for p in root.iterdir()} - before
    assert not {name for name in added if name in ("build", "dist") or name.endswith(".egg-info")}


def test_engine_messages_name_the_fix():
    denied = engine._explain(Exception("('Connection aborted.', PermissionError(13, 'Permission denied'))"))
    assert "'docker' group" in denied and "usermod" in denied
    missing = engine._explain(Exception("('Connection aborted.', FileNotFoundError(2, 'No such file or "
                                        "directory'))"))
    assert "apt-get install docker.io" in missing


def test_no_engine_is_one_line_without_traceback(tmp_path):
    """A real CLI call against a socket path where no engine listens."""
    env = {"DOCKER_HOST": f"unix://{tmp_path}/none.sock", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "minikf.cli", "images", "list"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "install" in lines[0] and "docker.io" in lines[0]
