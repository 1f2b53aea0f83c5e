"""Models through the service's sandbox: TFLite end to end, hostile models refused by reason,
and a runaway model stopped while other instances keep answering."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from tests.models import single_input_model

from cleanroom import AttestationPolicy, Client, ModelFormat, Secret
from cleanroom.attestation.measurement import package_measurement
from cleanroom.client.instance import Instance
from cleanroom.errors import InferenceFailed, ModelRejected
from cleanroom.runtime.base import RuntimeLimits
from cleanroom.server.runner import ServerThread
from cleanroom.server.settings import ServerSettings

MODELS = Path(__file__).resolve().parents[1] / "assets" / "models"
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def owner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, AttestationPolicy]]:
    data_dir = tmp_path_factory.mktemp("sandboxed")
    settings = ServerSettings(data_dir=data_dir, runtime=RuntimeLimits(request_timeout_s=3.0))
    with ServerThread(settings) as server:
        client = Client(server.url)
        client.sign_up("owner@lender.example", PASSWORD)
        client.sign_in("owner@lender.example", PASSWORD)
        policy = AttestationPolicy(
            measurements=[package_measurement().hex()],
            allow_simulated=True,
            simulated_root=data_dir / "simulated-root.pem",
        )
        yield client, policy
        client.close()


def _instance(owner: tuple[Client, AttestationPolicy], fmt: ModelFormat, **limits: Any) -> Instance:
    client, policy = owner
    inst = client.create_instance("Sandboxed", fmt, [], limits=limits or None)
    inst.validate_attestation(policy)
    inst.set_secret(Secret())
    return inst


def test_tflite_end_to_end_equals_litert(owner: tuple[Client, AttestationPolicy]) -> None:
    model = (MODELS / "dense_cast.tflite").read_bytes()
    inst = _instance(owner, ModelFormat.TFLITE)
    inst.upload_model(model)
    x = np.array([[0.5, -1.0, 2.0]], dtype=np.float32)
    got = inst.predict({"x": x})

    direct = Interpreter(model_content=model)
    direct.allocate_tensors()
    direct.set_tensor(direct.get_input_details()[0]["index"], x)
    direct.invoke()
    for detail in direct.get_output_details():
        expected = direct.get_tensor(detail["index"])
        assert got[detail["name"]].dtype == expected.dtype
        np.testing.assert_array_equal(got[detail["name"]], expected)


@pytest.mark.parametrize(
    ("fixture", "reason"),
    [
        ("hostile_external_data_etc_passwd.onnx", "external"),
        ("hostile_external_data_dotdot.onnx", "external"),
        ("hostile_custom_domain_op.onnx", "domain"),
        ("hostile_unknown_opset.onnx", "opset"),
        ("hostile_not_a_model.onnx", ""),
    ],
)
def test_hostile_onnx_models_are_refused_before_loading(
    owner: tuple[Client, AttestationPolicy], fixture: str, reason: str
) -> None:
    inst = _instance(owner, ModelFormat.ONNX)
    with pytest.raises(ModelRejected) as info:
        inst.upload_model((MODELS / fixture).read_bytes())
    assert reason in str(info.value).lower()
    assert not inst.model_ready


def test_hostile_tflite_custom_op_is_refused(owner: tuple[Client, AttestationPolicy]) -> None:
    inst = _instance(owner, ModelFormat.TFLITE)
    with pytest.raises(ModelRejected, match=r"(?i)custom"):
        inst.upload_model((MODELS / "hostile_custom_op.tflite").read_bytes())


def test_runaway_model_is_stopped_and_others_keep_answering(
    owner: tuple[Client, AttestationPolicy],
) -> None:
    healthy = _instance(owner, ModelFormat.ONNX)
    healthy.upload_model(single_input_model())
    runaway = _instance(owner, ModelFormat.ONNX)
    runaway.upload_model((MODELS / "hostile_infinite_loop.onnx").read_bytes())
    signature = runaway.model_signature
    assert signature is not None
    inputs = {
        str(s["name"]): np.zeros([d or 1 for d in s["shape"]], dtype=str(s["dtype"]))
        for s in signature["inputs"]
    }
    with pytest.raises(InferenceFailed):
        runaway.predict(inputs)
    x = np.ones((1, 3), np.float32)
    assert healthy.predict(x)["y"].shape == (1, 2)
    # The runaway instance's worker was replaced: it answers (and fails) again, cleanly.
    with pytest.raises(InferenceFailed):
        runaway.predict(inputs)
    assert healthy.predict(x)["y"].shape == (1, 2)


def test_an_instance_with_two_workers_answers_concurrent_requests(
    owner: tuple[Client, AttestationPolicy],
) -> None:
    client, _ = owner
    inst = _instance(owner, ModelFormat.ONNX, workers=2, request_timeout_s=3)
    inst.upload_model(single_input_model())
    assert inst.attested_config is not None
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    expected = inst.predict(x)["y"]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: inst.predict(x)["y"], range(12)))
    for result in results:
        np.testing.assert_array_equal(result, expected)
    sandbox = client.health()["sandbox"]
    assert sandbox["mechanism"] in ("netns+seccomp", "seccomp")
    assert sandbox["socket_denied"]
    assert sandbox["execve_denied"]
    assert sandbox["workers"] >= 2
