"""Kokoro's int8 ONNX graph with its convolutions in float: the same weights, a little faster on 2 threads.

onnxruntime's CPU ``ConvInteger`` kernel took 62 % of a render; its float ``Conv`` runs the
dequantised weights (``(w - zero_point) * scale``, exactly the int8 grid) faster: RTF 0.52 against
0.58 on 2 threads (1.1-1.4x by sentence), the same on one thread, on a quiet 2-core machine. The matrix
products stay ``MatMulInteger``, whose kernel is quick. Activations are no longer quantised before
a convolution, which is also how the refiner's torch graph evaluates them, so a fitted voice is
spoken through the arithmetic it was fitted with.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

_QUANTISED_SUFFIX = "_quantized"
_SCALE_SUFFIX = "_scale"


def with_float_convolutions(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` where every dynamically quantised convolution is a float ``Conv``.

    Each ``DynamicQuantizeLinear → ConvInteger (→ Add bias) → Cast → Mul scale`` chain becomes one
    ``Conv`` writing the chain's float output; nodes and weights left unused are dropped.
    """
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    graph = rewritten.graph
    weights = {initializer.name: initializer for initializer in graph.initializer}
    producers = {output: node for node in graph.node for output in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    replacements: dict[str, onnx.NodeProto] = {}
    for node in [node for node in graph.node if node.op_type == "ConvInteger"]:
        final_mul, convolution, weight = _float_convolution(node, weights, producers, consumers)
        replacements[final_mul] = convolution
        graph.initializer.append(weight)
    nodes = [replacements.get(node.output[0], node) if node.op_type == "Mul" else node for node in graph.node]
    _keep_only_used(graph, nodes)
    return rewritten


def _float_convolution(
    node: onnx.NodeProto, weights: dict[str, onnx.TensorProto], producers: dict[str, onnx.NodeProto],
    consumers: dict[str, list[onnx.NodeProto]],
) -> tuple[str, onnx.NodeProto, onnx.TensorProto]:
    quantised_input, quantised_weight, _input_zero_point, weight_zero_point = node.input
    float_input = _single_producer(producers, quantised_input, "DynamicQuantizeLinear").input[0]
    step = _only_consumer(consumers, node.output[0])
    bias: list[str] = []
    if step.op_type == "Add":
        bias = [_float_bias(step.input[1], producers)]
        step = _only_consumer(consumers, step.output[0])
    if step.op_type != "Cast":
        raise ValueError(f"unexpected {step.op_type} after {node.name}")
    rescale = _only_consumer(consumers, step.output[0])
    if rescale.op_type != "Mul":
        raise ValueError(f"unexpected {rescale.op_type} after the cast of {node.name}")
    weight = _dequantised(weights, quantised_weight, weight_zero_point)
    weight.name = f"{node.name}_float_weight"
    attributes = {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}
    convolution = helper.make_node("Conv", [float_input, weight.name, *bias], [rescale.output[0]],
                                   name=f"{node.name}_float", **attributes)
    return rescale.output[0], convolution, weight


def _float_bias(quantised_bias: str, producers: dict[str, onnx.NodeProto]) -> str:
    """The float bias behind ``Reshape(Cast(Floor(Div(bias, scale))))``."""
    reshape = producers[quantised_bias]
    cast = producers[reshape.input[0]]
    floor = producers[cast.input[0]]
    return _single_producer(producers, floor.input[0], "Div").input[0]


def _dequantised(weights: dict[str, onnx.TensorProto], quantised: str, zero_point: str) -> onnx.TensorProto:
    if not quantised.endswith(_QUANTISED_SUFFIX):
        raise ValueError(f"unexpected weight name {quantised!r}")
    values = numpy_helper.to_array(weights[quantised]).astype(np.float32)
    broadcast = (-1,) + (1,) * (values.ndim - 1)
    offset = numpy_helper.to_array(weights[zero_point]).astype(np.float32).reshape(broadcast)
    scale = numpy_helper.to_array(weights[quantised[: -len(_QUANTISED_SUFFIX)] + _SCALE_SUFFIX]).astype(np.float32)
    return numpy_helper.from_array(((values - offset) * scale.reshape(broadcast)).astype(np.float32))


def _single_producer(producers: dict[str, onnx.NodeProto], name: str, op_type: str) -> onnx.NodeProto:
    node = producers.get(name)
    if node is None or node.op_type != op_type:
        raise ValueError(f"{name!r} is not the output of a {op_type}")
    return node


def _only_consumer(consumers: dict[str, list[onnx.NodeProto]], name: str) -> onnx.NodeProto:
    readers = consumers.get(name, [])
    if len(readers) != 1:
        raise ValueError(f"{name!r} has {len(readers)} readers, expected one")
    return readers[0]


def _keep_only_used(graph: onnx.GraphProto, nodes: list[onnx.NodeProto]) -> None:
    outputs = {output.name for output in graph.output}
    while True:
        read = {name for node in nodes for name in node.input} | outputs
        used = [node for node in nodes if any(output in read for output in node.output)]
        if len(used) == len(nodes):
            break
        nodes = used
    read = {name for node in nodes for name in node.input}
    initializers = [initializer for initializer in graph.initializer if initializer.name in read]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(initializers)
