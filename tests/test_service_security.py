"""TLS, mutual TLS and bearer tokens with certificates made here; per-identity limits; the
refusal to serve plaintext without authentication on a non-loopback address; flags from env."""

from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
import sys

import grpc
import numpy as np
import pytest

import weightinit as wi
from weightinit.api import convert
from weightinit.client import Client
from weightinit.server import SERVICE_NAME, Security, Settings, create_server
from weightinit.v1 import initializer_service_pb2 as pb

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

pytestmark = pytest.mark.service

SPEC = {"scheme": "kaiming_normal", "shape": [64, 32], "seed": 9, "name": "fc.weight"}



def _status(error: Exception) -> grpc.StatusCode:
    """The gRPC status behind a weightinit error (the client keeps the RpcError as its cause)."""
    assert isinstance(error.__cause__, grpc.RpcError), repr(error)
    return error.__cause__.code()

def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject, key, issuer, issuer_key, *, ca=False, usage=None, sans=()):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA with a server (localhost, 127.0.0.1) and a client certificate, and an unrelated CA."""
    folder = tmp_path_factory.mktemp("pki")
    files = {}

    def write(name: str, data: bytes) -> str:
        path = folder / name
        path.write_bytes(data)
        files[name] = str(path)
        return str(path)

    ca_key = _key()
    ca = _certificate(_name("weightinit test CA"), ca_key, _name("weightinit test CA"), ca_key, ca=True)
    write("ca.pem", _pem(ca))
    server_key = _key()
    server = _certificate(_name("localhost"), server_key, ca.subject, ca_key, usage=ExtendedKeyUsageOID.SERVER_AUTH,
                          sans=(x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))))
    write("server.pem", _pem(server))
    write("server.key", _key_pem(server_key))
    client_key = _key()
    client = _certificate(_name("trainer-7"), client_key, ca.subject, ca_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    write("client.pem", _pem(client))
    write("client.key", _key_pem(client_key))
    other_key = _key()
    other = _certificate(_name("another CA"), other_key, _name("another CA"), other_key, ca=True)
    write("other-ca.pem", _pem(other))
    write("tokens", b"# tokens, one a line\nalpha-0123456789\n\nbravo-9876543210\n")
    return files


@pytest.fixture
def secure_server(pki):
    started = []

    def start(settings: Settings | None = None, **security):
        running = create_server("127.0.0.1", 0, settings=settings or Settings(), security=Security(**security))
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop(0.5)


def _fetch(target: str, **kwargs) -> np.ndarray:
    with Client(target, timeout=20, retry_seconds=0, **kwargs) as client:
        return client.generate(SPEC)


def _code(target: str, **kwargs) -> grpc.StatusCode:
    with pytest.raises(wi.WeightinitError) as caught:
        _fetch(target, **kwargs)
    return _status(caught.value)


def test_tls_handshake_and_wrong_ca(pki, secure_server):
    running = secure_server(tls_cert=pki["server.pem"], tls_key=pki["server.key"])
    assert (_fetch(running.target, tls_ca=pki["ca.pem"]) == wi.generate(SPEC)).all()
    assert _code(running.target, tls_ca=pki["other-ca.pem"]) == grpc.StatusCode.UNAVAILABLE
    assert _code(running.target) == grpc.StatusCode.UNAVAILABLE  # plaintext against TLS


def test_mutual_tls_needs_a_client_certificate_from_the_ca(pki, secure_server):
    running = secure_server(tls_cert=pki["server.pem"], tls_key=pki["server.key"], tls_client_ca=pki["ca.pem"])
    assert (_fetch(running.target, tls_ca=pki["ca.pem"], tls_cert=pki["client.pem"], tls_key=pki["client.key"])
            == wi.generate(SPEC)).all()
    assert _code(running.target, tls_ca=pki["ca.pem"]) == grpc.StatusCode.UNAVAILABLE


def test_bearer_tokens(pki, secure_server):
    running = secure_server(tls_cert=pki["server.pem"], tls_key=pki["server.key"], auth_tokens=pki["tokens"])
    tls = {"tls_ca": pki["ca.pem"]}
    assert (_fetch(running.target, token="bravo-9876543210", **tls) == wi.generate(SPEC)).all()
    assert _code(running.target, **tls) == grpc.StatusCode.UNAUTHENTICATED
    assert _code(running.target, token="bravo-987654321", **tls) == grpc.StatusCode.UNAUTHENTICATED
    assert _code(running.target, token="# tokens, one a line", **tls) == grpc.StatusCode.UNAUTHENTICATED
    with Client(running.target, timeout=10, retry_seconds=0, **tls) as anonymous:
        assert anonymous.health() == "SERVING"  # probes need no token
        with pytest.raises(wi.WeightinitError) as caught:
            anonymous.capabilities()
        assert _status(caught.value) == grpc.StatusCode.UNAUTHENTICATED


def test_tokens_work_on_loopback_plaintext_too(pki, secure_server):
    running = secure_server(auth_tokens=pki["tokens"])
    assert (_fetch(running.target, token="alpha-0123456789") == wi.generate(SPEC)).all()
    assert _code(running.target, token="alpha") == grpc.StatusCode.UNAUTHENTICATED


def test_per_identity_stream_limit(pki, secure_server):
    running = secure_server(Settings(max_streams_per_identity=1, stream_idle_timeout=0), auth_tokens=pki["tokens"])
    big = pb.GenerateRequest(spec=convert.spec_from_any({"scheme": "uniform", "shape": [1 << 26]}))
    with grpc.insecure_channel(running.target) as channel:
        call = channel.unary_stream(f"/{SERVICE_NAME}/Generate",
                                    request_serializer=pb.GenerateRequest.SerializeToString,
                                    response_deserializer=None)
        hog = call(big, metadata=(("authorization", "Bearer alpha-0123456789"),))
        next(hog)
        with Client(running.target, timeout=20, retry_seconds=0, token="alpha-0123456789") as same:
            with pytest.raises(wi.WeightinitError) as caught:
                same.generate(SPEC)
            assert _status(caught.value) == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "max_streams_per_identity" in caught.value.__cause__.details()
        assert (_fetch(running.target, token="bravo-9876543210") == wi.generate(SPEC)).all()
        hog.cancel()


def _serve_cli(*args, env=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "weightinit", "serve", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def test_plaintext_on_all_interfaces_is_refused_without_tls_or_tokens():
    result = _serve_cli("--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 2 and "--insecure-bind-all" in result.stderr
    result = _serve_cli("--port", "0", env={"WEIGHTINIT_HOST": "0.0.0.0"})
    assert result.returncode == 2 and "refusing" in result.stderr
    with pytest.raises(ValueError, match="insecure-bind-all"):
        create_server("0.0.0.0", 0)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_server_flags_from_the_environment(pki, server_process):
    health_port = _free_port()
    process = server_process(env={"WEIGHTINIT_AUTH_TOKENS": pki["tokens"], "WEIGHTINIT_TLS_CERT": pki["server.pem"],
                                  "WEIGHTINIT_TLS_KEY": pki["server.key"], "WEIGHTINIT_MAX_DEADLINE": "120",
                                  "WEIGHTINIT_HEALTH_PORT": str(health_port)})
    target = process.target.replace("127.0.0.1", "localhost")
    # probes that speak no TLS use the plaintext health-only port (SERVING once the backend is warm)
    health = subprocess.run([sys.executable, "-m", "weightinit", "health", "--server", f"127.0.0.1:{health_port}",
                             "--timeout", "60"], capture_output=True, text=True, timeout=90)
    assert health.stdout.strip() in ("SERVING", "NOT_SERVING"), health.stderr
    with Client(f"127.0.0.1:{health_port}", timeout=10, retry_seconds=0) as plaintext:
        with pytest.raises(wi.WeightinitError) as caught:
            plaintext.capabilities()  # that port serves health only
        assert _status(caught.value) == grpc.StatusCode.UNIMPLEMENTED
    with Client(target, timeout=20, retry_seconds=0, tls_ca=pki["ca.pem"], token="alpha-0123456789") as client:
        assert client.capabilities().limits.max_deadline_seconds == 120
        assert (client.generate(SPEC) == wi.generate(SPEC)).all()
    assert _code(target, tls_ca=pki["ca.pem"]) == grpc.StatusCode.UNAUTHENTICATED
    # the CLI's --server commands take the same credentials
    token_file = pki["tokens"] + ".one"
    with open(token_file, "w") as handle:
        handle.write("bravo-9876543210\n")
    out = os.path.join(os.path.dirname(pki["tokens"]), "fc.npy")
    result = subprocess.run([sys.executable, "-m", "weightinit", "generate", "--scheme", "kaiming_normal", "--shape",
                             "64", "32", "--seed", "9", "--name", "fc.weight", "--server", target, "--tls-ca",
                             pki["ca.pem"], "--token-file", token_file, "-q", "-o", out],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (np.load(out) == wi.generate(SPEC)).all()


def test_insecure_bind_all_is_an_explicit_choice_from_flag_or_environment():
    env = {**os.environ, "WEIGHTINIT_HOST": "0.0.0.0", "WEIGHTINIT_INSECURE_BIND_ALL": "1"}
    process = subprocess.Popen([sys.executable, "-m", "weightinit", "serve", "--port", "0"], env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        line = process.stdout.readline()
        assert line.startswith("listening on 0.0.0.0:"), line
        port = int(line.rsplit(":", 1)[1])
        with Client(f"127.0.0.1:{port}", timeout=20, retry_seconds=0) as client:
            assert (client.generate(SPEC) == wi.generate(SPEC)).all()
    finally:
        process.terminate()
        process.wait(30)
        process.stdout.close()


def test_tls_over_a_list_of_replicas(pki, secure_server):
    replicas = [secure_server(tls_cert=pki["server.pem"], tls_key=pki["server.key"]) for _ in range(2)]
    targets = [r.target for r in replicas]  # 127.0.0.1:PORT each: the certificate names 127.0.0.1
    assert (_fetch(targets, tls_ca=pki["ca.pem"]) == wi.generate(SPEC)).all()
    # a name the certificate holds, checked instead of the address (the k8s case: pods by IP, one DNS name)
    override = (("grpc.ssl_target_name_override", "localhost"),)
    assert (_fetch(targets, tls_ca=pki["ca.pem"], options=override) == wi.generate(SPEC)).all()
