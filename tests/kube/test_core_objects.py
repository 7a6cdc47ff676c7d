"""The core flavor's objects, checked by the kubernetes client's own models (strict round trip)."""

from minikf.kube import core as objs
from minikf.kube.job_entry import rank0_listens_on_own_ip
from minikf.kube.objects import TrainSpec


def _spec(**kw) -> TrainSpec:
    return TrainSpec(name="job-a", namespace="ml", workers=3, argv=["python3", "-m", "x"],
                     labels={"minikf.dev/run": "r"}, **kw)


def test_indexed_job_carries_the_env_contract():
    job = objs.indexed_job(_spec(data_configmaps=["d-0"]), master_addr="10.0.0.9", subdomain="job-a",
                           deadline_s=120)
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 3, 3)
    assert spec["backoffLimit"] == 0 and spec["activeDeadlineSeconds"] == 120
    pod = spec["template"]["spec"]
    env = {e["name"]: e.get("value") or e["valueFrom"]["fieldRef"]["fieldPath"]
           for e in pod["containers"][0]["env"]}
    assert env["MASTER_ADDR"] == "10.0.0.9" and env["WORLD_SIZE"] == "3" and env["MASTER_PORT"] == "29500"
    assert env["RANK"] == "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    assert env["MINIKF_POD_IP"] == "status.podIP"
    assert pod["subdomain"] == "job-a" and pod["restartPolicy"] == "Never"
    assert pod["volumes"][0]["projected"]["sources"] == [{"configMap": {"name": "d-0"}}]


def test_the_rank0_service_selects_only_the_labelled_index0_pod():
    svc = objs.rank0_service("job-a", "ml", {})
    assert svc["metadata"]["name"] == "job-a-rank0"
    assert svc["spec"]["selector"] == {"job-name": "job-a", objs.RANK_LABEL: "0"}
    headless = objs.headless_service("job-a", "ml", {})
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["selector"] == {"job-name": "job-a"}


def test_rank0_rendezvouses_on_its_own_pod_ip_and_the_others_on_the_service():
    own = {"MASTER_ADDR": "172.17.0.5"}
    assert rank0_listens_on_own_ip({"RANK": "0", "MINIKF_POD_IP": "172.17.0.5"}) == own
    assert rank0_listens_on_own_ip({"RANK": "1", "MINIKF_POD_IP": "172.17.0.6"}) == {}
    assert rank0_listens_on_own_ip({"RANK": "0"}) == {}  # a PyTorchJob: the operator's MASTER_ADDR


def test_job_state_from_conditions():
    assert objs.job_state({"status": {}}) == (False, False, "")
    complete = {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    assert objs.job_state(complete)[:2] == (True, True)
    failed = {"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                                         "message": "Job has reached the specified backoff limit"}]}}
    assert objs.job_state(failed) == (True, False,
                                      "BackoffLimitExceeded: Job has reached the specified backoff limit")


def test_deployment_serves_with_the_token_from_the_secret():
    dep = objs.deployment("m", "ml", ["m-model-0"], "m-token", labels={"a": "b"})
    pod = dep["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["image"] == objs.SERVER_IMAGE
    assert container["env"] == [{"name": "MINIKF_SERVE_TOKEN",
                                 "valueFrom": {"secretKeyRef": {"name": "m-token", "key": "token"}}}]
    assert pod["metadata"]["labels"] == {"a": "b", objs.APP_LABEL: "m"}
    assert dep["spec"]["selector"]["matchLabels"] == {objs.APP_LABEL: "m"}
    assert objs.deployment_ready({"status": {"readyReplicas": 1}}) == (True, "")
    stuck = {"status": {"conditions": [{"type": "Progressing", "status": "False", "message": "quota"}]}}
    assert objs.deployment_ready(stuck) == (False, "quota")
