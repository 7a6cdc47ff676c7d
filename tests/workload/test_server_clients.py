"""The served model through the clients people already have: tritonclient.http (what Triton,
KServe and perf_analyzer users use), KServe's own InferenceRESTClient, and plain requests for
V1. Each gets the in-process model's classes for real test images of the sample, and a 4xx for
bad input. The clients know only the URL, the model's name and the token."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import requests

from tests.workload.model_servers import AUTH, TOKEN

MODEL = "fashion-mnist"
N = 32


def _bearer_plugin():
    """tritonclient's way to add a header to every call (as its BasicAuth plugin does)."""
    from tritonclient._plugin import InferenceServerClientPlugin

    class Bearer(InferenceServerClientPlugin):
        def __call__(self, request):
            request.headers["Authorization"] = f"Bearer {TOKEN}"

    return Bearer()


@pytest.fixture
def triton(fashion_server):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(fashion_server["host_port"])
    client.register_plugin(_bearer_plugin())
    yield client
    client.close()


def _images_for(metadata: dict, x: np.ndarray) -> np.ndarray:
    """The images in the input's own shape, as metadata gives it (-1: the batch)."""
    shape = [len(x) if d == -1 else d for d in metadata["inputs"][0]["shape"]]
    return x.reshape(shape).astype(np.float32)


def test_tritonclient_defaults_binary(triton, fashion_sample, trained_fashion):
    """Default settings: binary tensor data both ways, every output; then just probabilities."""
    import tritonclient.http as httpclient

    assert triton.is_server_ready() and triton.is_model_ready(MODEL)
    meta = triton.get_model_metadata(MODEL)
    spec = meta["inputs"][0]
    x = _images_for(meta, fashion_sample["x_test"][:N])
    tensor = httpclient.InferInput(spec["name"], list(x.shape), spec["datatype"])
    tensor.set_data_from_numpy(x)
    result = triton.infer(MODEL, [tensor])
    predictions = result.as_numpy("predictions")
    assert predictions.dtype == np.int64
    assert predictions.tolist() == trained_fashion["predictions"][:N].tolist()
    accuracy = (predictions == fashion_sample["y_test"][:N]).mean()
    assert accuracy > 0.4  # real images, decoded right: far above the 0.1 of chance

    result = triton.infer(MODEL, [tensor], outputs=[httpclient.InferRequestedOutput("probabilities")])
    assert [o["name"] for o in result.get_response()["outputs"]] == ["probabilities"]
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (N, 10)
    np.testing.assert_allclose(probabilities, trained_fashion["probabilities"][:N], rtol=1e-4, atol=1e-5)


def test_tritonclient_json(triton, fashion_sample, trained_fashion):
    import tritonclient.http as httpclient

    x = fashion_sample["x_test"][:N].reshape(N, 784)  # a shape the model takes, flattened
    tensor = httpclient.InferInput("input", [N, 784], "FP32")
    tensor.set_data_from_numpy(x, binary_data=False)
    outputs = [httpclient.InferRequestedOutput(name, binary_data=False)
               for name in ("predictions", "probabilities")]
    result = triton.infer(MODEL, [tensor], outputs=outputs, request_id="json-1")
    response = result.get_response()
    assert response["id"] == "json-1" and all("data" in o for o in response["outputs"])
    assert result.as_numpy("predictions").tolist() == trained_fashion["predictions"][:N].tolist()
    np.testing.assert_allclose(result.as_numpy("probabilities"), trained_fashion["probabilities"][:N],
                               rtol=1e-4, atol=1e-5)


def test_tritonclient_bad_input_and_no_token(fashion_server, triton):
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    x = np.zeros((2, 1, 28, 28))  # float64: FP64, which this model does not take
    tensor = httpclient.InferInput("input", list(x.shape), "FP64")
    tensor.set_data_from_numpy(x)
    with pytest.raises(InferenceServerException) as caught:
        triton.infer(MODEL, [tensor])
    assert caught.value.status() == "400" and "FP32" in caught.value.message()

    tensor = httpclient.InferInput("input", [2, 27, 27], "FP32")
    tensor.set_data_from_numpy(np.zeros((2, 27, 27), np.float32))
    with pytest.raises(InferenceServerException, match=r"\[N,1,28,28\]"):
        triton.infer(MODEL, [tensor])
    tensor = httpclient.InferInput("input", [2, 28, 28], "FP32")
    tensor.set_data_from_numpy(np.zeros((2, 28, 28), np.float32))
    with pytest.raises(InferenceServerException, match="unknown output 'classes'"):
        triton.infer(MODEL, [tensor], outputs=[httpclient.InferRequestedOutput("classes")])

    anonymous = httpclient.InferenceServerClient(fashion_server["host_port"])
    try:
        with pytest.raises(InferenceServerException) as caught:
            anonymous.get_model_metadata(MODEL)
        assert caught.value.status() == "401"
    finally:
        anonymous.close()


def test_kserve_rest_client_v2(fashion_server, fashion_sample, trained_fashion):
    """KServe's own V2 client, binary (its default from numpy) and JSON."""
    import httpx
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
    from kserve.protocol.infer_type import RequestedOutput

    x = fashion_sample["x_test"][:N].reshape(N, 1, 28, 28)
    want = trained_fashion["predictions"][:N].tolist()

    async def main():
        client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
        try:
            assert await client.is_server_ready(fashion_server["url"], headers=AUTH)
            answers = []
            for binary in (True, False):
                tensor = InferInput("input", list(x.shape), "FP32")
                tensor.set_data_from_numpy(x, binary_data=binary)
                request = InferRequest(model_name=MODEL, infer_inputs=[tensor], request_outputs=[
                    RequestedOutput("predictions", {"binary_data": binary}),
                    RequestedOutput("probabilities")])
                answers.append(await client.infer(fashion_server["url"], request, MODEL, headers=dict(AUTH)))
            bad = InferInput("input", [1, 3], "FP32")
            bad.set_data_from_numpy(np.zeros((1, 3), np.float32), binary_data=False)
            with pytest.raises(httpx.HTTPStatusError) as caught:
                await client.infer(fashion_server["url"], InferRequest(model_name=MODEL, infer_inputs=[bad]),
                                   MODEL, headers=dict(AUTH))
            return answers, caught.value
        finally:
            await client.close()

    answers, error = asyncio.run(main())
    for response in answers:
        outputs = {o.name: o.as_numpy() for o in response.outputs}
        assert outputs["predictions"].tolist() == want
        np.testing.assert_allclose(outputs["probabilities"], trained_fashion["probabilities"][:N],
                                   rtol=1e-4, atol=1e-5)
    assert error.response.status_code == 400 and "shape" in error.response.json()["error"]


def test_requests_v1(fashion_server, fashion_sample, trained_fashion):
    url = f"{fashion_server['url']}/v1/models/{MODEL}:predict"
    x = fashion_sample["x_test"][:N]
    r = requests.post(url, json={"instances": x.tolist()}, headers=AUTH, timeout=30)
    assert r.status_code == 200 and r.json()["predictions"] == trained_fashion["predictions"][:N].tolist()
    r = requests.post(url, json={"instances": x[:, :20].tolist()}, headers=AUTH, timeout=30)
    assert r.status_code == 400 and "shape" in r.json()["error"]
