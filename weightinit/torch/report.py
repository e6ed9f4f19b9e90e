"""Signal-propagation report: how an initialization carries signal through depth.

For every Linear/Conv layer, in forward order: the std of its output on a batch (forward) and the
std of the loss gradient with respect to that output (backward), the loss being
``sum(output * g)`` for a fixed unit-normal ``g`` (so the gradient entering the network has unit
variance). A good init keeps both roughly constant with depth (Glorot & Bengio 2010; He et al.
2015); ``docs/signal-propagation.md`` shows the numbers.

:func:`build_stack` turns a small JSON architecture into a model initialized by weightinit, for
``weightinit report ARCH.json -o report.png``::

    {"input": [256], "batch": 512, "seed": 0,
     "layers": [{"type": "linear", "features": 256, "activation": "tanh", "repeat": 50}],
     "init": {"xavier 5/3": {"scheme": "xavier_normal", "params": {"gain": 1.6666666666666667}},
              "N(0, 0.01)": {"scheme": "normal", "params": {"std": 0.01}},
              "lsuv": "lsuv"}}

``type`` is ``linear`` (``features``) or ``conv2d`` (``channels``, ``kernel``, ``padding``);
``activation`` is ``tanh``, ``relu``, ``sigmoid`` or ``linear``; a conv stack is flattened before
the first linear layer. ``init`` is one init or a mapping label -> init; an init is a spec fragment
applied to every weight (biases 0) or ``"lsuv"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch import nn

import weightinit as wi
from weightinit.torch.lsuv import LSUV_LAYERS, fill_parameter, lsuv

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "linear": nn.Identity}


@dataclass
class SignalReport:
    """Per layer: name, forward output std, backward gradient std."""

    layers: list[str]
    forward_std: list[float]
    backward_std: list[float]
    label: str = ""
    extra: dict = field(default_factory=dict)

    def ratio(self, which: str = "forward") -> float:
        """last layer's std / first layer's std."""
        values = self.forward_std if which == "forward" else self.backward_std
        return values[-1] / values[0]

    def table(self) -> str:
        lines = [f"{'layer':<12} {'forward std':>12} {'backward std':>13}"]
        lines += [f"{name:<12} {f:>12.4g} {b:>13.4g}" for name, f, b in
                  zip(self.layers, self.forward_std, self.backward_std)]
        return "\n".join(lines)

    def __str__(self) -> str:
        return (f"{self.label}\n" if self.label else "") + self.table()


def signal_report(model: nn.Module, batch: torch.Tensor, *, seed: int = 0, label: str = "") -> SignalReport:
    """Forward activation std and backward gradient std at every Linear/Conv output of ``model``."""
    outputs: dict[str, torch.Tensor] = {}
    order: list[str] = []

    def keep(name):
        def hook(module, inputs, output):
            output.retain_grad()
            outputs[name] = output
            if name not in order:
                order.append(name)
        return hook

    hooks = [m.register_forward_hook(keep(name)) for name, m in model.named_modules() if isinstance(m, LSUV_LAYERS)]
    if not hooks:
        raise wi.SpecError("model", "has no Linear or Conv layer to report on")
    try:
        was_training = model.training
        model.eval()
        out = model(batch)
        direction = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
        (out * direction).sum().backward()
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    forward = [outputs[n].detach().double().std().item() for n in order]
    backward = [outputs[n].grad.double().std().item() if outputs[n].grad is not None else math.nan for n in order]
    model.zero_grad(set_to_none=True)
    return SignalReport(order, forward, backward, label)


def plot_reports(reports: list[SignalReport], path: str, title: str = "") -> str:
    """Forward and backward std per layer, log scale, one line per report; saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    for report in reports:
        depth = range(1, len(report.layers) + 1)
        axes[0].semilogy(depth, report.forward_std, marker=".", label=report.label or None)
        axes[1].semilogy(depth, report.backward_std, marker=".", label=report.label or None)
    axes[0].set_title("forward: std of each layer's output")
    axes[1].set_title("backward: std of the gradient at each layer's output")
    for axis in axes:
        axis.set_xlabel("layer")
        axis.grid(True, which="major", alpha=0.3)
    if any(r.label for r in reports):
        axes[0].legend(fontsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


# ---------------------------------------------------------------------------
# Small JSON architectures (the CLI's `weightinit report`)


def _positive_int(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise wi.SpecError(where, f"must be a positive integer, got {value!r}")
    return value


def build_stack(arch: Mapping[str, Any]) -> tuple[nn.Sequential, torch.Tensor]:
    """The model (torch's default init, to be replaced) and a unit-normal batch for ``arch``."""
    if not isinstance(arch, Mapping):
        raise wi.SpecError("arch", "must be a JSON object")
    shape = arch.get("input")
    shape = [shape] if isinstance(shape, int) else shape
    if not isinstance(shape, list) or not shape:
        raise wi.SpecError("arch.input", f"must be a feature count or a [C, H, W] shape, got {shape!r}")
    shape = [_positive_int(d, "arch.input") for d in shape]
    batch_size = _positive_int(arch.get("batch", 256), "arch.batch")
    modules: list[nn.Module] = []
    current = list(shape)
    layers = arch.get("layers")
    if not isinstance(layers, list) or not layers:
        raise wi.SpecError("arch.layers", "must be a non-empty list")
    for index, layer in enumerate(layers):
        where = f"arch.layers[{index}]"
        if not isinstance(layer, Mapping):
            raise wi.SpecError(where, "must be an object")
        activation = layer.get("activation", "linear")
        if activation not in ACTIVATIONS:
            raise wi.SpecError(f"{where}.activation", f"must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
        for _ in range(_positive_int(layer.get("repeat", 1), f"{where}.repeat")):
            kind = layer.get("type")
            if kind == "linear":
                if len(current) > 1:
                    modules.append(nn.Flatten())
                    current = [math.prod(current)]
                features = _positive_int(layer.get("features"), f"{where}.features")
                modules.append(nn.Linear(current[0], features))
                current = [features]
            elif kind == "conv2d":
                if len(current) != 3:
                    raise wi.SpecError(f"{where}.type", "conv2d needs a [C, H, W] input before it")
                channels = _positive_int(layer.get("channels"), f"{where}.channels")
                kernel = _positive_int(layer.get("kernel", 3), f"{where}.kernel")
                padding = layer.get("padding", kernel // 2)
                modules.append(nn.Conv2d(current[0], channels, kernel, padding=padding))
                size = [d + 2 * padding - kernel + 1 for d in current[1:]]
                if min(size) < 1:
                    raise wi.SpecError(f"{where}.kernel", f"leaves no spatial extent ({size})")
                current = [channels] + size
            else:
                raise wi.SpecError(f"{where}.type", f"must be linear or conv2d, got {kind!r}")
            modules.append(ACTIVATIONS[activation]())
    seed = arch.get("seed", 0)
    batch = torch.randn([batch_size] + shape, generator=torch.Generator().manual_seed(int(seed)))
    return nn.Sequential(*modules), batch


def initialize(model: nn.Module, init: Any, seed: int, batch: torch.Tensor) -> dict:
    """Apply one init (a spec fragment for every weight, biases 0; or "lsuv"); returns the manifest."""
    if init == "lsuv":
        return lsuv(model, batch, seed=seed)
    if not isinstance(init, Mapping) or "scheme" not in init:
        raise wi.SpecError("arch.init", f"must be \"lsuv\" or a spec fragment with a scheme, got {init!r}")
    tensors = []
    for name, parameter in model.named_parameters():
        spec = {"name": name, "shape": list(parameter.shape), "seed": seed, "scheme": "zeros"}
        if parameter.dim() >= 2:
            spec.update({k: v for k, v in init.items() if k not in ("name", "shape", "seed")})
        fill_parameter(parameter, spec)
        tensors.append(wi.spec_from_dict(spec).to_dict())
    return {"seed": seed, "tensors": tensors}


def report_architecture(arch: Mapping[str, Any]) -> list[SignalReport]:
    """One report per init of ``arch`` (a fresh model each)."""
    inits = arch.get("init", {"scheme": "kaiming_normal"})
    labelled = inits if isinstance(inits, Mapping) and "scheme" not in inits else {"": inits}
    seed = int(arch.get("seed", 0))
    reports = []
    for label, init in labelled.items():
        model, batch = build_stack(arch)
        initialize(model, init, seed, batch)
        reports.append(signal_report(model, batch, seed=seed, label=str(label)))
    return reports


__all__ = ["ACTIVATIONS", "SignalReport", "build_stack", "initialize", "plot_reports", "report_architecture",
           "signal_report"]
