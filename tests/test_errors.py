"""One exception family (weightinit.errors) for the engine, Client, LocalClient and the CLI; tensors named."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

import weightinit as wi
from weightinit import errors
from weightinit.client import Client

REPO = Path(__file__).resolve().parents[1]
BAD_STD = {"scheme": "normal", "shape": [2], "name": "fc1.bias", "params": {"std": 0}}
MANIFEST = {"seed": 3, "tensors": [{"scheme": "ones", "shape": [2], "name": "fc1.weight"}, BAD_STD]}


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_family_tree_and_compatibility():
    assert issubclass(wi.SpecError, errors.InvalidRequestError) and issubclass(wi.SpecError, ValueError)
    assert issubclass(wi.LimitError, wi.SpecError)
    for cls in (errors.InvalidRequestError, errors.ServiceError, errors.IntegrityError, errors.BackendUnavailable):
        assert issubclass(cls, errors.WeightinitError)
    assert issubclass(errors.UnavailableError, errors.ServiceError) and issubclass(errors.UnavailableError,
                                                                                   ConnectionError)
    assert issubclass(errors.DeadlineExceededError, TimeoutError)
    from weightinit.client import IntegrityError

    assert IntegrityError is errors.IntegrityError is wi.IntegrityError
    assert wi.BackendUnavailable is errors.BackendUnavailable and issubclass(wi.BackendUnavailable, RuntimeError)
    with pytest.raises(errors.BackendUnavailable):
        wi.get_backend("abacus")


def test_engine_errors_are_in_the_family():
    with pytest.raises(errors.WeightinitError) as caught:
        wi.generate(BAD_STD)
    assert type(caught.value) is wi.SpecError and caught.value.field == "params.std"
    with pytest.raises(wi.LimitError) as caught:
        wi.spec_from_dict({"scheme": "ones", "shape": [10]}, limits=wi.Limits(max_elements=5))
    assert caught.value.field == "shape"
    assert caught.value.violations == [errors.Violation("shape", caught.value.message)]


@pytest.mark.parametrize("call", ["generate", "iter_chunks"])
def test_server_invalid_argument_is_a_spec_error_with_violations(client, call):
    with pytest.raises(wi.SpecError) as caught:
        result = getattr(client, call)(BAD_STD)
        list(result) if call == "iter_chunks" else None
    error = caught.value
    assert not isinstance(error, grpc.RpcError)
    assert error.field == "params.std" and "must be > 0" in error.message
    assert "spec.normal.std" in [v.field for v in error.violations]


@pytest.mark.parametrize("call", ["generate_model", "iter_model_chunks"])
def test_manifest_errors_name_the_tensor_locally_and_from_the_server(client, local, call):
    found = {}
    for side, api in (("server", client), ("local", local)):
        with pytest.raises(wi.SpecError) as caught:
            list(getattr(api, call)(MANIFEST))
        found[side] = caught.value
        assert (caught.value.tensor, caught.value.tensor_index, caught.value.field) == ("fc1.bias", 1, "params.std")
        assert str(caught.value).startswith("fc1.bias: params.std: must be > 0"), str(caught.value)
    assert "manifest.tensors[1].normal.std" in [v.field for v in found["server"].violations]
    assert str(found["server"]) == str(found["local"])


def test_unnamed_manifest_tensor_is_named_by_position(client):
    with pytest.raises(wi.SpecError) as caught:
        client.generate_model({"tensors": [{"scheme": "ones", "shape": [1], "name": "a"},
                                           {"scheme": "normal", "shape": [1], "params": {"std": -1}}]})
    assert str(caught.value).startswith("manifest.tensors[1]: params.std:")


def test_over_a_server_limit_is_a_limit_error(make_server):
    running = make_server(max_elements_per_request=10)
    with Client(running.target) as small:
        with pytest.raises(wi.LimitError) as caught:
            small.generate({"scheme": "ones", "shape": [100]})
        assert caught.value.field == "shape" and not isinstance(caught.value, grpc.RpcError)
        assert small.generate({"scheme": "ones", "shape": [10]}).sum() == 10


@pytest.mark.parametrize("call, arg", [("generate", {"scheme": "ones", "shape": [2]}),
                                       ("generate_model", MANIFEST), ("capabilities", None), ("health", None)])
def test_unreachable_server_is_unavailable_error(call, arg):
    with Client(f"127.0.0.1:{_closed_port()}", max_attempts=2, initial_backoff=0.01, timeout=2) as client:
        with pytest.raises(errors.UnavailableError) as caught:
            getattr(client, call)(*([arg] if arg is not None else []))
    assert caught.value.code == "UNAVAILABLE" and isinstance(caught.value.__cause__, grpc.RpcError)


def test_deadline_is_deadline_exceeded_error(server):
    with Client(server.target, timeout=0.5, max_attempts=1) as client:
        with pytest.raises(errors.DeadlineExceededError) as caught:
            for _ in client.iter_chunks({"scheme": "uniform", "shape": [1 << 23]}, chunk_elements=1 << 10):
                time.sleep(0.05)
    assert caught.value.code == "DEADLINE_EXCEEDED"


def test_cli_names_the_manifest_tensor(tmp_path):
    manifest = tmp_path / "model.json"
    manifest.write_text(json.dumps(MANIFEST))
    result = subprocess.run([sys.executable, "-m", "weightinit", "generate", "--manifest", str(manifest),
                             "-o", str(tmp_path / "m.safetensors")], capture_output=True, text=True, cwd=REPO,
                            timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("weightinit: invalid spec: fc1.bias: params.std: must be > 0"), lines
