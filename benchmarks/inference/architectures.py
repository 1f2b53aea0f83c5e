"""MobileNetV2, ResNet-50 and VGG-19 as ONNX graphs with random weights.

The graphs are written with ``onnx.helper`` in the form an eval-mode export
from a deep-learning framework takes: batch normalisation already folded
into the convolution's bias, ReLU6 as ``Clip(0, 6)``. Layer layouts follow the
papers (MobileNetV2: Sandler et al. 2018, table 2; ResNet-50: He et al. 2016,
table 1, with the stride on the 3x3 convolution; VGG-19: Simonyan and
Zisserman 2015, configuration E), so parameter counts and FLOPs match the
published models. Nothing is downloaded; weights are He-normal so
activations stay finite and no denormal numbers slow the CPU down.

A *scale* below 1 narrows every layer and shortens every stage: the quick
mode uses it to get three small models of the same families in
milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["ARCHITECTURES", "INPUT_NAME", "INPUT_SHAPE", "BuiltModel", "build_model"]

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
INPUT_SHAPE = (1, 3, 224, 224)
CLASSES = 1000
OPSET = 17


@dataclass(frozen=True)
class BuiltModel:
    name: str
    model: onnx.ModelProto
    parameters: int


class _Graph:
    """Accumulates nodes and initializers; every layer returns its output name."""

    def __init__(self, seed: int) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.parameters = 0
        self._rng = np.random.default_rng(seed)
        self._count = 0
        self._relu6_bounds = False

    def _name(self, kind: str) -> str:
        self._count += 1
        return f"{kind}_{self._count}"

    def _weight(self, name: str, shape: tuple[int, ...], fan_in: int) -> str:
        std = np.sqrt(2.0 / fan_in)
        values = self._rng.standard_normal(shape, dtype=np.float32)
        values *= np.float32(std)
        self.initializers.append(numpy_helper.from_array(values, name))
        self.parameters += values.size
        return name

    def _bias(self, name: str, size: int) -> str:
        self.initializers.append(numpy_helper.from_array(np.zeros(size, np.float32), name))
        self.parameters += size
        return name

    def conv(self, x: str, c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1) -> str:
        name = self._name("conv")
        w = self._weight(name + "_w", (c_out, c_in // groups, k, k), (c_in // groups) * k * k)
        b = self._bias(name + "_b", c_out)
        pad = k // 2
        self.nodes.append(
            helper.make_node(
                "Conv",
                [x, w, b],
                [name],
                kernel_shape=[k, k],
                strides=[stride, stride],
                pads=[pad, pad, pad, pad],
                group=groups,
            )
        )
        return name

    def relu(self, x: str) -> str:
        name = self._name("relu")
        self.nodes.append(helper.make_node("Relu", [x], [name]))
        return name

    def relu6(self, x: str) -> str:
        if not self._relu6_bounds:
            self._relu6_bounds = True
            self.initializers.append(
                numpy_helper.from_array(np.array(0.0, np.float32), "relu6_min")
            )
            self.initializers.append(
                numpy_helper.from_array(np.array(6.0, np.float32), "relu6_max")
            )
        name = self._name("relu6")
        self.nodes.append(helper.make_node("Clip", [x, "relu6_min", "relu6_max"], [name]))
        return name

    def add(self, a: str, b: str) -> str:
        name = self._name("add")
        self.nodes.append(helper.make_node("Add", [a, b], [name]))
        return name

    def max_pool(self, x: str, k: int, stride: int, pad: int) -> str:
        name = self._name("maxpool")
        self.nodes.append(
            helper.make_node(
                "MaxPool",
                [x],
                [name],
                kernel_shape=[k, k],
                strides=[stride, stride],
                pads=[pad] * 4,
            )
        )
        return name

    def global_pool_flatten(self, x: str) -> str:
        pooled = self._name("gap")
        flat = self._name("flatten")
        self.nodes.append(helper.make_node("GlobalAveragePool", [x], [pooled]))
        self.nodes.append(helper.make_node("Flatten", [pooled], [flat], axis=1))
        return flat

    def flatten(self, x: str) -> str:
        flat = self._name("flatten")
        self.nodes.append(helper.make_node("Flatten", [x], [flat], axis=1))
        return flat

    def dense(self, x: str, n_in: int, n_out: int, output: str | None = None) -> str:
        name = output or self._name("gemm")
        w = self._weight(name + "_w", (n_out, n_in), n_in)
        b = self._bias(name + "_b", n_out)
        self.nodes.append(helper.make_node("Gemm", [x, w, b], [name], transB=1))
        return name

    def finish(self, graph_name: str, logits: str) -> onnx.ModelProto:
        self.nodes.append(helper.make_node("Identity", [logits], [OUTPUT_NAME]))
        graph = helper.make_graph(
            self.nodes,
            graph_name,
            [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, list(INPUT_SHAPE))],
            [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [1, CLASSES])],
            self.initializers,
        )
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="benchmarks"
        )
        model.ir_version = 8
        return model


def _width(channels: int, scale: float) -> int:
    return max(4, round(channels * scale / 4) * 4) if scale < 1 else channels


def _depth(blocks: int, scale: float) -> int:
    return max(1, round(blocks * scale)) if scale < 1 else blocks


def mobilenet_v2(scale: float = 1.0, seed: int = 0) -> BuiltModel:
    g = _Graph(seed)
    # (expansion t, output channels c, repeats n, first stride s): Sandler et al., table 2.
    settings = [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ]
    c_in = _width(32, scale)
    x = g.relu6(g.conv(INPUT_NAME, 3, c_in, 3, stride=2))
    for t, c, n, s in settings:
        c_out = _width(c, scale)
        for i in range(_depth(n, scale)):
            stride = s if i == 0 else 1
            hidden = c_in * t
            y = x
            if t != 1:
                y = g.relu6(g.conv(y, c_in, hidden, 1))
            y = g.relu6(g.conv(y, hidden, hidden, 3, stride=stride, groups=hidden))
            y = g.conv(y, hidden, c_out, 1)  # linear bottleneck: no activation
            x = g.add(x, y) if stride == 1 and c_in == c_out else y
            c_in = c_out
    last = _width(1280, scale) if scale < 1 else 1280
    x = g.relu6(g.conv(x, c_in, last, 1))
    logits = g.dense(g.global_pool_flatten(x), last, CLASSES)
    return BuiltModel("MobileNetV2", g.finish("mobilenet_v2", logits), g.parameters)


def resnet50(scale: float = 1.0, seed: int = 0) -> BuiltModel:
    g = _Graph(seed)
    stem = _width(64, scale)
    x = g.max_pool(g.relu(g.conv(INPUT_NAME, 3, stem, 7, stride=2)), 3, 2, 1)
    c_in = stem
    # (bottleneck width, blocks, first stride): He et al., table 1, 50-layer column.
    for width, blocks, stride in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]:
        w = _width(width, scale)
        c_out = w * 4
        for i in range(_depth(blocks, scale)):
            s = stride if i == 0 else 1
            y = g.relu(g.conv(x, c_in, w, 1))
            y = g.relu(g.conv(y, w, w, 3, stride=s))
            y = g.conv(y, w, c_out, 1)
            shortcut = g.conv(x, c_in, c_out, 1, stride=s) if i == 0 else x
            x = g.relu(g.add(y, shortcut))
            c_in = c_out
    logits = g.dense(g.global_pool_flatten(x), c_in, CLASSES)
    return BuiltModel("ResNet-50", g.finish("resnet50", logits), g.parameters)


def vgg19(scale: float = 1.0, seed: int = 0) -> BuiltModel:
    g = _Graph(seed)
    # Configuration E: four 3x3 convolutions in each of the last three stages.
    stages = [(64, 2), (128, 2), (256, 4), (512, 4), (512, 4)]
    x, c_in = INPUT_NAME, 3
    for channels, convs in stages:
        c_out = _width(channels, scale)
        for _ in range(_depth(convs, scale)):
            x = g.relu(g.conv(x, c_in, c_out, 3))
            c_in = c_out
        x = g.max_pool(x, 2, 2, 0)
    hidden = _width(4096, scale)
    x = g.flatten(x)  # 7 x 7 x c after five poolings of 224
    x = g.relu(g.dense(x, c_in * 7 * 7, hidden))
    x = g.relu(g.dense(x, hidden, hidden))
    logits = g.dense(x, hidden, CLASSES)
    return BuiltModel("VGG-19", g.finish("vgg19", logits), g.parameters)


ARCHITECTURES: dict[str, Callable[[float, int], BuiltModel]] = {
    "mobilenet_v2": mobilenet_v2,
    "resnet50": resnet50,
    "vgg19": vgg19,
}


def build_model(key: str, scale: float = 1.0, seed: int = 0) -> BuiltModel:
    """Build one architecture by key (``mobilenet_v2``, ``resnet50``, ``vgg19``)."""
    return ARCHITECTURES[key](scale, seed)
