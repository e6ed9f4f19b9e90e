"""Replicas: round robin over several servers, one tensor fetched as parallel ranges over them, a
replica killed mid-download; and the Kubernetes manifests, validated offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import weightinit as wi
from weightinit.client import Client
from weightinit.client.core import channel_target

pytestmark = pytest.mark.service

REPO = Path(__file__).resolve().parents[1]
SPEC = {"scheme": "kaiming_normal", "shape": [1024, 1000], "seed": 17, "name": "layer.weight"}


def test_targets_become_one_round_robin_address_list():
    assert channel_target("127.0.0.1:5001") == "127.0.0.1:5001"
    assert channel_target(["127.0.0.1:5001", "127.0.0.2:5002"]) == "ipv4:127.0.0.1:5001,127.0.0.2:5002"
    assert channel_target(["localhost:5003"]) in ("ipv4:127.0.0.1:5003", "ipv6:[::1]:5003")


def test_round_robin_and_parallel_ranges_give_the_bytes_of_one_server(make_server):
    replicas = [make_server() for _ in range(3)]
    expected = wi.generate(SPEC)
    with Client(replicas[0].target, timeout=30) as single:
        assert np.array_equal(single.generate(SPEC), expected)
    before = [r.servicer.stats.snapshot()["started"] for r in replicas]
    with Client([r.target for r in replicas], timeout=30) as spread:
        for _ in range(6):
            spread.capabilities()  # every subchannel gets connected
        for _ in range(9):
            assert np.array_equal(spread.generate(SPEC), expected)
        assert np.array_equal(spread.generate(SPEC, parallel=3), expected)
        assert np.array_equal(spread.generate(SPEC, start=1000, stop=700_001, parallel=4),
                              expected.reshape(-1)[1000:700_001])
    served = [r.servicer.stats.snapshot()["started"] - b for r, b in zip(replicas, before)]
    assert all(count > 0 for count in served), served
    assert sum(served) == 9 + 3 + 4


def test_a_dns_target_works(make_server):
    running = make_server()
    with Client(f"dns:///localhost:{running.port}", timeout=30) as client:
        assert np.array_equal(client.generate(SPEC), wi.generate(SPEC))


def test_a_replica_killed_mid_download_leaves_the_others_to_finish(server_process):
    # different chunk sizes tell the replicas apart from the client's side (bytes never differ)
    chunk_sizes = [1 << 20, 1 << 19, 1 << 18]
    replicas = [server_process("--chunk-bytes", str(size)) for size in chunk_sizes]
    spec = {"scheme": "normal", "shape": [1 << 23], "seed": 5, "name": "big"}  # 32 MiB
    flat = np.empty(1 << 23, dtype=np.float32)
    killed = None
    with Client([r.target for r in replicas], initial_backoff=0.05) as client:
        for position, chunk in enumerate(client.iter_chunks(spec)):
            flat[chunk.offset:chunk.offset + chunk.data.size] = chunk.data
            if position == 2:
                killed = replicas[chunk_sizes.index(chunk.data.nbytes)]
                killed.proc.kill()
    assert killed is not None and killed.proc.wait(10) != 0
    assert np.array_equal(flat, wi.generate(spec).reshape(-1))


def _manifests():
    yaml = pytest.importorskip("yaml")
    documents = []
    for path in sorted((REPO / "deploy" / "k8s").glob("*.yaml")):
        documents.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return documents


def test_kubernetes_manifests_validate_against_the_schemas():
    validator = pytest.importorskip("kubernetes_validate")
    documents = _manifests()
    assert sorted(doc["kind"] for doc in documents) == ["Deployment", "PodDisruptionBudget", "Service"]
    for document in documents:
        validator.validate(document, "1.30.0", strict=True)  # raises on unknown fields or wrong types


def test_kubernetes_manifests_agree_with_each_other_and_the_server():
    from weightinit.cli import build_parser

    by_kind = {doc["kind"]: doc for doc in _manifests()}
    deployment, service, budget = by_kind["Deployment"], by_kind["Service"], by_kind["PodDisruptionBudget"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["clusterIP"] == "None"  # headless: clients see every pod
    assert budget["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    env = {item["name"]: item["value"] for item in container["env"]}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["grpc"]["port"] == ports["health"] == int(env["WEIGHTINIT_HEALTH_PORT"])
    assert ports["metrics"] == int(env["WEIGHTINIT_METRICS_PORT"])
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= set(ports)
    # every WEIGHTINIT_ variable names a real `weightinit serve` flag
    serve = build_parser()._subparsers._group_actions[0].choices["serve"]
    flags = {option for action in serve._actions for option in action.option_strings}
    for name in env:
        if name.startswith("WEIGHTINIT_"):
            assert "--" + name[len("WEIGHTINIT_"):].lower().replace("_", "-") in flags, name
