"""The objects the kubernetes platform creates, checked against the upstream SDKs' models
(kubeflow-training, kubeflow's Trainer API, kserve, the kubernetes client) — real libraries,
no cluster. Also the worker entry point run for real, and the model's way back through a log.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile

import pytest

from minikf.kube import objects as res
from tests.paths import SAMPLE, SCENARIOS


def _spec(**kw) -> res.TrainSpec:
    base = dict(name="fm-train", namespace="team", workers=3,
                argv=["python3", "-m", "minikf.kube.job_entry", "--mirrors", res.DATA_MOUNT, "--sample"],
                data_configmaps=["fm-data-0"], labels={"minikf.dev/run": "r1"})
    return res.TrainSpec(**{**base, **kw})


def test_pytorchjob_is_a_valid_sdk_object_with_master_and_workers():
    obj = res.pytorchjob(_spec())
    model = res.check_openapi(obj, "KubeflowOrgV1PyTorchJob")
    replicas = model.spec.pytorch_replica_specs
    assert replicas["Master"].replicas == 1 and replicas["Worker"].replicas == 2
    container = replicas["Worker"].template.spec.containers[0]
    assert container.name == "pytorch"  # the operator injects MASTER_ADDR/RANK into this one
    assert container.security_context.allow_privilege_escalation is False
    assert container.security_context.capabilities.drop == ["ALL"]
    assert container.image_pull_policy == "IfNotPresent"
    assert container.volume_mounts[0].mount_path == res.DATA_MOUNT
    assert replicas["Master"].template.spec.volumes[0].projected.sources[0].config_map.name == "fm-data-0"
    assert model.spec.run_policy.backoff_limit == 0


def test_single_worker_pytorchjob_has_only_a_master():
    obj = res.pytorchjob(_spec(workers=1, gpus=1))
    assert list(obj["spec"]["pytorchReplicaSpecs"]) == ["Master"]
    limits = obj["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["resources"]
    assert limits["limits"]["nvidia.com/gpu"] == "1"


def test_a_misspelt_field_is_caught_by_the_sdk_check():
    obj = res.pytorchjob(_spec())
    obj["spec"]["pytorchReplicaSpec"] = obj["spec"].pop("pytorchReplicaSpecs")
    with pytest.raises(res.InvalidResource, match="has no field.*pytorchReplicaSpec"):
        res.check_openapi(obj, "KubeflowOrgV1PyTorchJob")
    obj = res.inference_service(res.ServeSpec("fm", "team", "m", "t"))
    obj["spec"]["predictor"]["containers"][0]["env"][0]["valueFrom"]["secretRef"] = {}
    with pytest.raises(res.InvalidResource, match="V1EnvVarSource has no field.*secretRef"):
        res.check_openapi(obj, "V1beta1InferenceService")


def test_a_wrong_type_is_caught():
    obj = res.pytorchjob(_spec())
    obj["spec"]["pytorchReplicaSpecs"]["Master"]["replicas"] = "one"
    with pytest.raises(res.InvalidResource, match="replicas: expected int"):
        res.check_openapi(obj, "KubeflowOrgV1PyTorchJob")


def test_trainjob_is_a_valid_trainer_api_object():
    from kubeflow_trainer_api import models

    obj = res.trainjob(_spec())
    job = models.TrainerV1alpha1TrainJob.from_dict(obj)
    assert job.spec.runtime_ref.name == "torch-distributed"
    assert job.spec.trainer.num_nodes == 3
    assert job.spec.trainer.command[:3] == ["python3", "-m", "minikf.kube.job_entry"]
    assert job.spec.trainer.num_proc_per_node == 1
    assert job.spec.runtime_patches[0].manager == "minikf.dev/manager"  # Trainer's webhook: domain/path
    patched = job.spec.runtime_patches[0].training_runtime_spec.template.spec.replicated_jobs[0]
    pod = patched.template.spec.template.spec
    assert pod.volumes[0].projected.sources[0].config_map.name == "fm-data-0"
    assert pod.containers[0].volume_mounts[0].mount_path == res.DATA_MOUNT


def test_pydantic_check_names_a_field_the_sdk_drops():
    from kubeflow_trainer_api import models

    obj = res.trainjob(_spec(data_configmaps=[]))
    obj["spec"]["trainer"]["numNode"] = 2
    with pytest.raises(res.InvalidResource, match="spec.trainer.numNode"):
        res.check_pydantic(obj, models.TrainerV1alpha1TrainJob)


def test_inference_service_serves_the_configmap_model_with_the_token_from_a_secret():
    obj = res.inference_service(res.ServeSpec("fm-serve", "team", ["fm-model-0", "fm-model-1"], "fm-token"))
    model = res.check_openapi(obj, "V1beta1InferenceService")
    assert obj["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    container = model.spec.predictor.containers[0]
    assert container.env[0].value_from.secret_key_ref.name == "fm-token"
    assert "--model-dir" in container.command and res.MODEL_MOUNT in container.command
    assert container.security_context.seccomp_profile.type == "RuntimeDefault"
    sources = model.spec.predictor.volumes[0].projected.sources
    assert [s.config_map.name for s in sources] == ["fm-model-0", "fm-model-1"]  # one directory
    assert "token" not in str(container.command).lower()  # never on a command line


def test_configmaps_and_secrets(tmp_path):
    (cm,) = res.files_configmaps("fm-data", "team", SAMPLE)
    assert cm["metadata"]["name"] == "fm-data-0"
    assert sorted(cm["binaryData"]) == sorted(p.name for p in SAMPLE.iterdir())
    secret = res.token_secret("fm-token", "team", "s3cret")
    assert secret["stringData"] == {"token": "s3cret"}
    model = tmp_path / "model"  # model.pt and model.onnx of ~0.83 MB each: two ConfigMaps
    model.mkdir()
    for name in ("model.pt", "model.onnx"):
        (model / name).write_bytes(b"\1" * 830_000)
    (model / "model.json").write_text("{}")
    maps = res.files_configmaps("fm-model", "team", model)
    assert [sorted(m["binaryData"]) for m in maps] == [["model.json", "model.onnx"], ["model.pt"]]
    (tmp_path / "big.bin").write_bytes(b"\0" * (res.CONFIGMAP_LIMIT + 1))
    with pytest.raises(res.InvalidResource, match="at most"):
        res.files_configmaps("big", "team", tmp_path)


def test_status_readers():
    assert res.job_finished({}) == (False, False, "")
    conditions = [{"type": "Running", "status": "False"}, {"type": "Succeeded", "status": "True"}]
    assert res.job_finished({"status": {"conditions": conditions}})[:2] == (True, True)
    done, ok, why = res.job_finished({"status": {"conditions": [
        {"type": "Failed", "status": "True", "message": "OOMKilled"}]}})
    assert (done, ok, why) == (True, False, "OOMKilled")
    assert res.job_finished({"status": {"conditions": [{"type": "Complete", "status": "True"}]}})[1]
    assert res.service_ready({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}) == (True, "")
    assert res.service_ready({"status": {"conditions": [
        {"type": "Ready", "status": "False", "reason": "ImagePullBackOff"}]}}) == (False, "ImagePullBackOff")


def test_dns_names():
    assert res.dns_name("minikf", "Train_Step", "ab12") == "minikf-train-step-ab12"
    assert res.dns_name("1st").startswith("m-")
    assert len(res.dns_name("x" * 80)) <= 52


def test_pack_and_unpack_through_a_log(tmp_path):
    src = tmp_path / "src"
    (src / "model").mkdir(parents=True)
    (src / "model" / "model.pt").write_bytes(bytes(range(256)) * 10)
    (src / "metrics.jsonl").write_text('{"epoch": 1}\n')
    log = "epoch 1 loss 0.5\n" + res.pack_dir(src) + "done\n"
    out = res.unpack_from_log(log, tmp_path / "out")
    assert (out / "model" / "model.pt").read_bytes() == bytes(range(256)) * 10
    with pytest.raises(ValueError, match="no model archive"):
        res.unpack_from_log("training crashed\n", tmp_path / "none")


def test_unpack_refuses_paths_out_of_the_destination(tmp_path):
    import base64

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    log = f"{res.MODEL_BEGIN}\n{base64.b64encode(buffer.getvalue()).decode()}\n{res.MODEL_END}\n"
    with pytest.raises(tarfile.OutsideDestinationError):
        res.unpack_from_log(log, tmp_path / "dest")
    assert not (tmp_path / "escape.txt").exists()


@pytest.mark.slow
def test_job_entry_trains_and_hands_the_model_back_in_its_log(tmp_path):
    """The pod's command, run here as one worker: data from a mounted directory (the sample),
    MD5-checked, trained one epoch; the model comes back through stdout and loads."""
    from minikf.workload.model import load_model

    proc = subprocess.run(
        [sys.executable, "-m", "minikf.kube.job_entry", "--mirrors", str(SAMPLE), "--sample",
         "--epochs", "1", "--batch-size", "64", "--work", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "MASTER_PORT": "0", "HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = res.unpack_from_log(proc.stdout, tmp_path / "back")
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1
    load_model(out / "model")


def test_katib_experiment_of_the_tuning_scenario_passes_the_katib_sdk():
    """minikf/tuning/katib.py (the tuning area's builder) checked with the same strict round trip:
    the Experiment through kubeflow's Katib API models, its Job trial template through V1Job."""
    import kubeflow_katib_api.models as katib
    import yaml

    from minikf.tuning.katib import experiment
    from minikf.tuning.spec import parse_spec

    raw = yaml.safe_load((SCENARIOS / "tuning.yaml").read_text())
    spec_raw = next(s for s in raw["steps"] if s["kind"] == "tune")["args"]["spec"]
    spec_raw.update(max_trials=6, parallel_trials=2)  # ${params.*} in the file
    obj = experiment(parse_spec(spec_raw), "fm-tune", "team", res.RUNTIME_IMAGE, ["fm-data-0", "fm-data-1"])
    model = res.check_pydantic(obj, katib.V1beta1Experiment)
    assert model.spec.objective.objective_metric_name == "accuracy"
    assert {p.name for p in model.spec.parameters} == {"lr", "batch_size", "epochs"}
    res.check_openapi(obj["spec"]["trialTemplate"]["trialSpec"], "V1Job")


def test_trainer_env_maps_onto_the_worker_contract():
    from minikf.kube.job_entry import contract_from_trainer_env

    pet = {"PET_NNODES": "3", "PET_NODE_RANK": "2", "PET_MASTER_ADDR": "fm-node-0-0.fm",
           "PET_MASTER_PORT": "29400"}
    assert contract_from_trainer_env(pet) == {"WORLD_SIZE": "3", "RANK": "2",
                                              "MASTER_ADDR": "fm-node-0-0.fm", "MASTER_PORT": "29400"}
    assert contract_from_trainer_env({**pet, "RANK": "0"}) == {}  # the Training Operator's win
    assert contract_from_trainer_env({}) == {}


def test_images_kubernetes_always_pulls():
    """A TrainJob has no pull policy field: a :latest or untagged image is pulled every time."""
    assert res.always_pulled("minikf/runtime:latest") and res.always_pulled("minikf/runtime")
    assert res.always_pulled("localhost:5000/minikf/runtime")  # a registry port is not a tag
    assert not res.always_pulled("minikf/runtime:249fbc3c8a7d")
    assert not res.always_pulled("minikf/runtime:latest@sha256:" + "0" * 64)


def _not_kept(sent, stored, where: str = "") -> str:
    """The first path in `sent` whose value `stored` lacks or changed ("" if all are kept;
    fields the server added, its defaults, are fine)."""
    if isinstance(sent, dict) and isinstance(stored, dict):
        for key, value in sent.items():
            found = _not_kept(value, stored[key], f"{where}.{key}") if key in stored else f"{where}.{key}"
            if found:
                return found
        return ""
    if isinstance(sent, list) and isinstance(stored, list) and len(sent) == len(stored):
        return next((f for i, (a, b) in enumerate(zip(sent, stored, strict=True))
                     if (f := _not_kept(a, b, f"{where}[{i}]"))), "")
    return "" if sent == stored else where or "."


@pytest.mark.kube
def test_the_real_crd_schemas_keep_every_field(real_cluster, kube_ns):
    """The PyTorchJob, TrainJob and InferenceService as the platform builds them, sent to the real
    API server with the upstream CRDs (server-side dry run: validated, defaulted and pruned, not
    stored): every field comes back as sent. The SDK models above cannot tell what a CRD's
    structural schema would silently prune."""
    custom = real_cluster.custom()
    spec = _spec(namespace=kube_ns, workers=2)
    built = [(res.PYTORCHJOB, res.pytorchjob(spec)), (res.TRAINJOB, res.trainjob(spec)),
             (res.INFERENCESERVICE, res.inference_service(res.ServeSpec(
                 "fm-serve", kube_ns, ["fm-model-0"], "fm-token", labels={"minikf.dev/run": "r1"})))]
    for crd, obj in built:
        stored = custom.create_namespaced_custom_object(crd.group, crd.version, kube_ns, crd.plural,
                                                        obj, dry_run="All")
        assert _not_kept(obj["spec"], stored["spec"]) == "", f"{crd.name} lost a field"
        assert _not_kept(obj["metadata"], stored["metadata"]) == ""
    assert not custom.list_namespaced_custom_object(res.PYTORCHJOB.group, res.PYTORCHJOB.version, kube_ns,
                                                    res.PYTORCHJOB.plural)["items"]
