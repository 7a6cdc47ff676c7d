"""Serving a model that is not ours: ONNX graphs built here with onnx.helper, their metadata
taken from the graph, served by `minikf serve --model FILE.onnx` and used through tritonclient."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import numpy as np
import pytest

from minikf.workload.oip import Tensor
from minikf.workload.served_model import InputError, ModelError, open_model
from tests.workload.model_servers import TOKEN, running_server


def _centroid_classifier(path, x_train: np.ndarray, y_train: np.ndarray):
    """A nearest-centroid classifier as one Gemm and a Softmax: input `pixels` [batch, 784],
    output `class_probs` [batch, 10]. argmax of 2x.mu - |mu|^2 is the nearest class mean."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    flat = x_train.reshape(len(x_train), -1).astype(np.float32)
    means = np.stack([flat[y_train == c].mean(0) for c in range(10)])
    weights = numpy_helper.from_array((2 * means.T).astype(np.float32), "W")
    bias = numpy_helper.from_array(-(means ** 2).sum(1).astype(np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["pixels", "W", "b"], ["scores"]),
         helper.make_node("Softmax", ["scores"], ["class_probs"], axis=1)],
        "centroids",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 784])],
        [helper.make_tensor_value_info("class_probs", TensorProto.FLOAT, ["batch", 10])],
        initializer=[weights, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return means


def _expected(x: np.ndarray, means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flat = x.reshape(len(x), -1).astype(np.float64)
    scores = 2 * flat @ means.T - (means ** 2).sum(1)
    e = np.exp(scores - scores.max(1, keepdims=True))
    return scores.argmax(1), (e / e.sum(1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def centroids(tmp_path_factory, fashion_sample):
    path = tmp_path_factory.mktemp("foreign") / "centroids.onnx"
    means = _centroid_classifier(path, fashion_sample["x_train"], fashion_sample["y_train"])
    return {"path": path, "means": means}


def test_minikf_serve_takes_an_onnx_classifier(tmp_path, centroids, fashion_sample):
    import requests
    import tritonclient.http as httpclient
    from tritonclient._plugin import InferenceServerClientPlugin
    from tritonclient.utils import InferenceServerException

    class Bearer(InferenceServerClientPlugin):
        def __call__(self, request):
            request.headers["Authorization"] = f"Bearer {TOKEN}"

    x = fashion_sample["x_test"].reshape(-1, 784)
    want, want_probs = _expected(x, centroids["means"])
    with running_server(centroids["path"], tmp_path / "server.log", cli=True) as server:
        client = httpclient.InferenceServerClient(server["host_port"])
        client.register_plugin(Bearer())
        try:
            meta = client.get_model_metadata("centroids")
            assert meta == {
                "name": "centroids", "versions": ["1"], "platform": "onnxruntime_onnx",
                "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [-1, 784]}],
                "outputs": [{"name": "predictions", "datatype": "INT64", "shape": [-1]},
                            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
                            {"name": "class_probs", "datatype": "FP32", "shape": [-1, 10]}]}
            tensor = httpclient.InferInput("pixels", list(x.shape), "FP32")
            tensor.set_data_from_numpy(x)
            result = client.infer("centroids", [tensor])
            assert result.as_numpy("predictions").tolist() == want.tolist()
            assert (want == fashion_sample["y_test"]).mean() > 0.5  # a real classifier, real images
            # The graph ends in Softmax: its output already is the probabilities.
            np.testing.assert_array_equal(result.as_numpy("probabilities"), result.as_numpy("class_probs"))
            np.testing.assert_allclose(result.as_numpy("probabilities"), want_probs, atol=1e-4)

            square = httpclient.InferInput("pixels", [len(x), 28, 28], "FP32")
            square.set_data_from_numpy(x.reshape(-1, 28, 28))
            with pytest.raises(InferenceServerException, match=r"takes it as \[N,784\]"):
                client.infer("centroids", [square])
        finally:
            client.close()
        r = requests.post(f"{server['url']}/v1/models/centroids:predict", json={"instances": x[:5].tolist()},
                          headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        assert r.json() == {"predictions": want[:5].tolist()}


def test_model_paths_and_names(tmp_path, centroids):
    import shutil

    holder = tmp_path / "shoes-v2"
    holder.mkdir()
    shutil.copy(centroids["path"], holder / "model.onnx")
    assert open_model(holder).name == "shoes-v2"  # model.onnx: named after its directory
    assert open_model(holder / "model.onnx", name="shoes").name == "shoes"
    shutil.copy(centroids["path"], holder / "other.onnx")
    assert open_model(holder).name == "shoes-v2"  # model.onnx wins over the others
    (holder / "model.onnx").unlink()
    shutil.copy(centroids["path"], holder / "third.onnx")
    for path, name, words in [(holder, None, "more than one .onnx"),
                              (tmp_path / "nope", None, "no such file"),
                              (tmp_path, None, "no model here"), (centroids["path"], "a/b", "model name")]:
        with pytest.raises(ModelError, match=words):
            open_model(path, name)
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ModelError, match="not an ONNX file"):
        open_model(tmp_path / "notes.txt")


def test_cli_refuses_what_it_cannot_serve(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"\0")
    proc = subprocess.run([sys.executable, "-m", "minikf.cli", "serve", "--model",
                           str(tmp_path / "weights.bin")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "not an ONNX file" in proc.stderr and "Traceback" not in proc.stderr


def test_a_model_with_two_inputs_and_two_outputs(tmp_path):
    """Not a classifier (two outputs): its own outputs only; every input named, typed and shaped
    as declared; run one request at a time (no batching across requests with two inputs)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Cast", ["counts"], ["as_float"], to=TensorProto.FLOAT),
         helper.make_node("Add", ["values", "as_float"], ["total"]),
         helper.make_node("Mul", ["values", "as_float"], ["product"])],
        "adder",
        [helper.make_tensor_value_info("values", TensorProto.FLOAT, ["n", 3]),
         helper.make_tensor_value_info("counts", TensorProto.INT64, ["n", 3])],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, ["n", 3]),
         helper.make_tensor_value_info("product", TensorProto.FLOAT, ["n", 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "adder.onnx")
    served = open_model(tmp_path / "adder.onnx")
    assert [o.name for o in served.outputs] == ["total", "product"] and not served.batchable
    values = Tensor("values", "FP32", [2, 3], np.ones((2, 3), np.float32))
    counts = Tensor("counts", "INT64", [2, 3], np.arange(6, dtype=np.int64).reshape(2, 3))
    feeds = served.feeds_v2([values, counts])

    from minikf.workload.fast_infer import Batcher

    batcher = Batcher(served)

    async def run():
        return await asyncio.gather(batcher.run(feeds), batcher.run(feeds))

    first, second = asyncio.run(run())
    batcher.close()
    assert first[0].tolist() == second[0].tolist() == [[1, 2, 3], [4, 5, 6]]
    assert first[1].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert batcher.batches == 2
    for tensors, words in [([values], "missing input 'counts'"),
                           ([values, Tensor("counts", "FP32", [2, 3], np.ones((2, 3), np.float32))],
                            "datatype INT64, got FP32"),
                           ([values, Tensor("counts", "INT64", [1, 3], np.ones((1, 3), np.int64))],
                            "different batch sizes")]:
        with pytest.raises(InputError, match=words):
            served.feeds_v2(tensors)
