"""The /metrics endpoint, scraped and parsed with prometheus_client's parser, and the JSON access log:
both must match the calls made."""

from __future__ import annotations

import json
import logging
import urllib.request

import pytest

import weightinit as wi

from weightinit.client import Client
from weightinit.server import Security, Settings, create_server

parser = pytest.importorskip("prometheus_client.parser")
pytestmark = pytest.mark.service


def _scrape(port: int) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    samples = {}
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_and_access_log_match_the_calls(tmp_path, caplog):
    tokens = tmp_path / "tokens"
    tokens.write_text("secret-token-1\n")
    running = create_server("127.0.0.1", 0, settings=Settings(max_hashed_elements=100), metrics_port=0,
                            security=Security(auth_tokens=str(tokens)))
    caplog.set_level(logging.INFO, logger="weightinit.access")
    specs = [{"scheme": "normal", "shape": [300, 7], "name": f"w{i}"} for i in range(3)]
    half = {"scheme": "uniform", "shape": [1000], "dtype": "float16", "name": "h"}
    manifest = {"seed": 4, "tensors": [{"scheme": "ones", "shape": [10], "name": "a"},
                                       {"scheme": "normal", "shape": [5, 5], "name": "b"}]}
    try:
        with Client(running.target, timeout=30, token="secret-token-1", retry_seconds=0) as client:
            for spec in specs:
                client.generate(spec)
            client.generate(half, start=100, stop=600)
            client.generate_model(manifest)
            client.capabilities()
            for bad in ({"scheme": "normal", "shape": [-1]}, {"scheme": "normal", "shape": [1 << 10]}):
                with pytest.raises(wi.WeightinitError):
                    if bad["shape"][0] > 0:
                        client.digest(bad)  # over max_hashed_elements
                    else:
                        client.generate(bad)
            with pytest.raises(wi.WeightinitError):
                client.generate({"scheme": "zeros", "shape": [1 << 20, 1 << 13]})  # over max_elements_per_request
        with Client(running.target, timeout=30, retry_seconds=0) as anonymous:
            with pytest.raises(wi.WeightinitError):
                anonymous.generate(specs[0])
        samples = _scrape(running.metrics_port)
    finally:
        running.stop(0.5)

    requests = "weightinit_requests_total"
    assert _value(samples, requests, rpc="Generate", code="OK") == 4
    assert _value(samples, requests, rpc="GenerateModel", code="OK") == 1
    assert _value(samples, requests, rpc="GetCapabilities", code="OK") == 1
    assert _value(samples, requests, rpc="Generate", code="INVALID_ARGUMENT") == 1
    assert _value(samples, requests, rpc="Generate", code="RESOURCE_EXHAUSTED") == 2
    assert _value(samples, requests, rpc="Generate", code="UNAUTHENTICATED") == 1
    labels = {"backend": running.servicer.backend.name}
    assert _value(samples, "weightinit_sent_elements_total", scheme="normal", dtype="float32", **labels) == \
        3 * 300 * 7 + 25
    assert _value(samples, "weightinit_sent_bytes_total", scheme="uniform", dtype="float16",
                  **labels) == 500 * 2
    assert _value(samples, "weightinit_sent_bytes_total", scheme="ones", dtype="float32", **labels) == 40
    assert _value(samples, "weightinit_streams_in_flight") == 0
    assert _value(samples, "weightinit_stream_duration_seconds_count", rpc="Generate") == 4
    assert _value(samples, "weightinit_time_to_first_byte_seconds_count", rpc="Generate") == 4
    assert _value(samples, "weightinit_rejected_requests_total", limit="max_hashed_elements") == 1
    assert _value(samples, "weightinit_rejected_requests_total", limit="authentication") == 1
    assert _value(samples, "weightinit_rejected_requests_total", limit="max_elements_per_request") == 1
    assert sum(value for (name, _), value in samples.items() if name == "weightinit_rejected_requests_total") == 3
    assert _value(samples, "weightinit_generation_seconds_total", **labels) > 0
    assert ("weightinit_send_seconds_total", (("rpc", "Generate"),)) in samples

    lines = [json.loads(record.getMessage()) for record in caplog.records if record.name == "weightinit.access"]
    assert len(lines) == 4 + 1 + 1 + 3 + 1
    for line in lines:
        assert {"rpc", "peer", "identity", "code", "duration_s"} <= set(line) or line["code"] == "UNAUTHENTICATED"
    assert not any("secret-token-1" in record.getMessage() for record in caplog.records)
    ok = [line for line in lines if line["rpc"] == "Generate" and line["code"] == "OK"]
    assert sorted(line["spec"]["elements"] for line in ok) == sorted([2100, 2100, 2100, 500])
    assert all(line["identity"].startswith("token:") for line in ok)
    assert {line["spec"]["name"] for line in ok} == {"w0", "w1", "w2", "h"}
    assert sum(line["bytes"] for line in ok) > 3 * 2100 * 4 + 1000  # data plus headers and digests
