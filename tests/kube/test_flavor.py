"""Which flavor runs training and serving: discovery of the CRD and its ready controller, or forced."""

import pytest

from minikf.kube import flavor as fl
from minikf.kube import objects as res
from minikf.runtime.errors import MinikfError

ALL = {c.name: True for c in fl.CONTROLLERS}
NONE: dict[str, bool] = {}


def test_no_crds_means_core_with_the_crds_named():
    choice = fl.choose("training", "auto", NONE, {}, [])
    assert choice.flavor == "core" and choice.crd is None
    assert "no pytorchjobs.kubeflow.org (Kubeflow Training Operator) or trainjobs" in choice.why


def test_a_crd_with_no_ready_controller_is_not_taken_for_kubeflow():
    """The shared cluster's case: the CRDs are applied, nothing reconciles them."""
    state = {"kserve-controller-manager": "in kserve, no ready replica"}
    choice = fl.choose("serving", "auto", ALL, state, [])
    assert choice.flavor == "core"
    assert "no controller reconciles it (kserve-controller-manager: in kserve, no ready replica)" \
        in choice.why


def test_a_ready_controller_chooses_kubeflow_through_its_crd():
    choice = fl.choose("training", "auto", ALL, {"kubeflow-trainer-controller-manager": "ready"}, [])
    assert choice.flavor == "kubeflow" and choice.crd == res.TRAINJOB
    assert choice.line() == ("kubeflow (trainjobs.trainer.kubeflow.org): "
                             "kubeflow-trainer-controller-manager is ready")


def test_unreadable_controller_namespaces_trust_the_crd_and_say_so():
    unreadable = [f"{ns} (HTTP 403)" for ns in fl.CONTROLLER_NAMESPACES]
    choice = fl.choose("training", "auto", ALL, {}, unreadable)
    assert choice.flavor == "kubeflow" and choice.crd == res.PYTORCHJOB
    assert "could not be looked for" in choice.why and "--flavor core" in choice.why


def test_forced_flavors_win_and_a_forced_kubeflow_without_its_crd_is_missing():
    assert fl.choose("training", "core", ALL, {"training-operator": "ready"}, []).flavor == "core"
    forced = fl.choose("serving", "kubeflow", ALL, {}, [])
    assert forced.flavor == "kubeflow" and forced.crd == res.INFERENCESERVICE
    absent = fl.choose("serving", "kubeflow", NONE, {}, [])
    assert absent.crd is None and absent.why.startswith("forced, but no inferenceservices")


def test_requested_flavor_from_the_argument_or_the_environment(monkeypatch):
    monkeypatch.delenv(fl.ENV, raising=False)
    assert fl.requested_flavor(None) == "auto"
    monkeypatch.setenv(fl.ENV, "Core")
    assert fl.requested_flavor(None) == "core"
    assert fl.requested_flavor("kubeflow") == "kubeflow"
    expected = r"MINIKF_KUBE_FLAVOR='kf' is not a kubernetes flavor; expected one of auto, core, kubeflow"
    with pytest.raises(MinikfError, match=expected):
        monkeypatch.setenv(fl.ENV, "kf")
        fl.requested_flavor(None)
    with pytest.raises(MinikfError, match=r"--flavor='x'"):
        fl.requested_flavor("x")


def test_the_cli_refuses_a_bad_or_misplaced_flavor_in_one_line(tmp_path):
    import subprocess
    import sys

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "minikf.cli", "run", "fashion-mnist", *args],
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)

    misplaced = run("--platform", "local", "--flavor", "core")
    assert misplaced.returncode == 2
    assert misplaced.stderr.strip() == ("error: --flavor is for --platform kubernetes only "
                                        "(got --platform local)")
    bad = run("--platform", "kubernetes", "--flavor", "bad")
    assert bad.returncode == 2
    assert bad.stderr.strip() == ("error: --flavor='bad' is not a kubernetes flavor; expected one of auto, "
                                  "core, kubeflow")
