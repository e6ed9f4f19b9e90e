"""signal_report on the seed document's two experiments (50-layer tanh and ReLU MLPs), with numbers.

Measured (width 128, batch 256, seed 0; docs/signal-propagation.md): forward std last/first layer
tanh + xavier_normal(gain 5/3) 0.65, tanh + N(0, 0.01) 0 (underflows by layer ~47, 0.11x per layer),
ReLU + He 1.01, ReLU + xavier_normal 4e-8 (0.707x per layer: the variance halves), LSUV 1.00 for both.
The asserted ranges leave room for other seeds and widths (256 gave 0.66, 9e-40, 1.99, 8e-8).
"""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from weightinit.cli import main  # noqa: E402
from weightinit.torch.report import build_stack, report_architecture, signal_report  # noqa: E402

DEPTH = 50


def _arch(activation: str, inits: dict) -> dict:
    return {"input": [128], "batch": 256, "seed": 0,
            "layers": [{"type": "linear", "features": 128, "activation": activation, "repeat": DEPTH}],
            "init": inits}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small matrices: torch's thread pool only adds contention on a shared machine; and the vanishing
    N(0, 0.01) signal would otherwise spend most of the time in subnormal arithmetic."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    yield
    torch.set_flush_denormal(False)
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tanh_reports():
    reports = report_architecture(_arch("tanh", {
        "xavier": {"scheme": "xavier_normal", "params": {"gain": 5 / 3}},
        "small": {"scheme": "normal", "params": {"std": 0.01}},
        "lsuv": "lsuv"}))
    return {r.label: r for r in reports}


@pytest.fixture(scope="module")
def relu_reports():
    reports = report_architecture(_arch("relu", {
        "he": {"scheme": "kaiming_normal", "params": {"nonlinearity": "relu"}},
        "xavier": {"scheme": "xavier_normal"},
        "lsuv": "lsuv"}))
    return {r.label: r for r in reports}


def _per_layer(report) -> float:
    """Geometric mean factor of the forward std from one layer to the next."""
    return report.ratio() ** (1 / (DEPTH - 1))


def test_tanh_keeps_its_signal_with_xavier_gain_5_3(tanh_reports):
    xavier = tanh_reports["xavier"]
    assert len(xavier.layers) == DEPTH
    assert 0.4 < xavier.ratio() < 1.5
    assert min(xavier.forward_std) > 0.5
    # the gradient reaches the first layer (grows toward the input, but stays finite and non-zero)
    assert 1 < xavier.backward_std[0] / xavier.backward_std[-1] < 1e3


def test_tanh_loses_its_signal_with_normal_0_01(tanh_reports):
    small = tanh_reports["small"]
    assert small.ratio() < 1e-30
    assert small.forward_std[1] / small.forward_std[0] < 0.2  # about 0.01 * sqrt(128) = 0.11 per layer
    assert small.backward_std[0] < 1e-30 * small.backward_std[-1]  # vanishing gradients


def test_relu_keeps_its_signal_with_he(relu_reports):
    he = relu_reports["he"]
    assert 0.5 < he.ratio() < 3
    assert 0.98 < _per_layer(he) < 1.03
    assert 0.2 < he.backward_std[0] / he.backward_std[-1] < 5


def test_relu_with_xavier_halves_the_variance_per_layer(relu_reports):
    xavier = relu_reports["xavier"]
    assert 0.68 < _per_layer(xavier) < 0.74  # 1/sqrt(2) = 0.707 in std: half the variance per layer
    assert xavier.ratio() < 1e-6
    assert xavier.backward_std[0] / xavier.backward_std[-1] < 1e-5


@pytest.mark.parametrize("family", ["tanh", "relu"])
def test_lsuv_levels_both(family, tanh_reports, relu_reports):
    lsuv = (tanh_reports if family == "tanh" else relu_reports)["lsuv"]
    assert all(0.9 < std < 1.1 for std in lsuv.forward_std), lsuv.forward_std


def test_table_lists_every_layer(relu_reports):
    text = str(relu_reports["he"])
    assert text.splitlines()[0] == "he" and len(text.splitlines()) == DEPTH + 2


def test_conv_stack_and_signal_report_on_any_model():
    model, batch = build_stack({"input": [3, 8, 8], "batch": 16,
                                "layers": [{"type": "conv2d", "channels": 8, "activation": "relu", "repeat": 3},
                                           {"type": "linear", "features": 10}]})
    report = signal_report(model, batch)
    assert report.layers == ["0", "2", "4", "7"] and all(s > 0 for s in report.forward_std + report.backward_std)


def test_cli_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps({"input": [3, 6, 6], "batch": 8, "title": "tiny",
                                "layers": [{"type": "conv2d", "channels": 4, "activation": "tanh", "repeat": 2},
                                           {"type": "linear", "features": 8, "activation": "tanh", "repeat": 3}],
                                "init": {"xavier": {"scheme": "xavier_uniform"}, "lsuv": "lsuv"}}))
    png = tmp_path / "report.png"
    assert main(["report", str(arch), "-o", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert "forward std" in capsys.readouterr().out


@pytest.mark.parametrize("arch, field", [
    ({"input": [4], "layers": []}, "arch.layers"),
    ({"input": [4], "layers": [{"type": "lstm"}]}, "arch.layers[0].type"),
    ({"input": [4], "layers": [{"type": "linear", "features": 4, "activation": "gelu"}]}, "arch.layers[0].activation"),
    ({"input": [4], "layers": [{"type": "conv2d", "channels": 2}]}, "arch.layers[0].type"),
])
def test_bad_architectures_name_the_field(tmp_path, capsys, arch, field):
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(arch))
    assert main(["report", str(path)]) == 2
    assert field in capsys.readouterr().err
