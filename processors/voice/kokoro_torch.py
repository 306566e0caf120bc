"""Kokoro-82M with a differentiable float torch decoder, both halves taken from the int8 ONNX graph we ship.

The style vector's first 128 dims (the timbre) condition only the decoder; the last 128 drive the
prosody predictor (durations, pitch, energy). The graph is cut where the timbre enters:

- the *frontend* — every node the timbre does not reach (text encoders, prosody predictor, the
  harmonic source and the parts of the decoder that read only those) — runs in onnxruntime,
  exactly as synthesis runs it, once per phrase (:meth:`DifferentiableKokoro.prepare`);
- the *decoder* — every node the timbre reaches — runs as torch operators, one per ONNX node
  (:meth:`DifferentiableKokoro.render`), differentiable in the timbre.

The decoder is the int8 graph evaluated in float: ``DynamicQuantizeLinear`` passes activations
through unquantised (scale 1, zero point 0), so ``MatMulInteger`` / ``ConvInteger`` become float
matmuls and convolutions with the int8 weights less their zero points, and the graph's own
multiplications by the weight scales complete ``w = (q - zero_point) * scale``. The export has no
random operators, so renders are deterministic.

Cutting the graph needs the ``onnx`` package once; both halves are then cached in one torch file
in a cache directory (``infra.kokoro_assets.kokoro_cache_dir()`` for the shipped model), and later
loads need only torch and onnxruntime.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from processors.constants import KOKORO_DECODER_STYLE_DIMS, KOKORO_MAX_TOKENS, KOKORO_STYLE_SIZE
from processors.errors import ExternalToolMissingError, InvalidTextError, SynthesisError

GRAPH_CACHE_FORMAT = 1
TOKENS_INPUT, STYLE_INPUT, SPEED_INPUT = "tokens", "style", "speed"
_ONNX_DTYPES = {1: torch.float32, 6: torch.int32, 7: torch.int64, 9: torch.bool}


@dataclass(frozen=True)
class GraphNode:
    """One ONNX node: operator, input and output value names ("" for an omitted input), attributes."""

    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attributes: dict


@dataclass(frozen=True)
class KokoroGraph:
    """Kokoro's ONNX graph cut where the timbre enters.

    ``frontend_model``: serialised ONNX model whose outputs are the decoder's inputs (``frontier``);
    ``decoder``: the decoder's nodes in topological order, with ``constants`` they read (integer
    weights as stored); ``timbre``: the value holding ``style[:, :128]``; ``output``: the audio.
    """

    frontend_model: bytes
    frontier: tuple[str, ...]
    decoder: tuple[GraphNode, ...]
    constants: dict[str, torch.Tensor]
    timbre: str
    output: str

    @classmethod
    def load(cls, model_path: Path, cache_dir: Path) -> KokoroGraph:
        """The cut graph of the ONNX file ``model_path``, from ``cache_dir`` when it was cut before."""
        cache = cache_dir / f"{model_path.stem}.{model_path.stat().st_size}.cut-v{GRAPH_CACHE_FORMAT}.pt"
        if cache.exists():
            return cls(**_graph_fields(torch.load(cache, weights_only=True)))
        graph = cls.from_onnx(model_path)
        cache.parent.mkdir(parents=True, exist_ok=True)
        staging = cache.with_suffix(".partial")
        torch.save(_cache_fields(graph), staging)
        staging.rename(cache)
        return graph

    @classmethod
    def from_onnx(cls, model_path: Path) -> KokoroGraph:
        """Cut the ONNX file (needs the ``onnx`` package)."""
        try:
            import onnx
            from onnx import numpy_helper
        except ImportError as error:
            raise ExternalToolMissingError("cutting Kokoro's ONNX graph the first time needs onnx (pip install onnx)") from error
        model = onnx.load(str(model_path))
        nodes = tuple(_graph_node(node, onnx.helper.get_attribute_value) for node in model.graph.node)
        timbre = _timbre_value(nodes)
        decoder = _nodes_reached_from(nodes, timbre)
        initializers = {tensor.name: tensor for tensor in model.graph.initializer}
        decoder_outputs = {output for node in decoder for output in node.outputs}
        read = {name for node in decoder for name in node.inputs if name}
        frontier = tuple(sorted(read - decoder_outputs - set(initializers) - {timbre}))
        constants = {name: torch.from_numpy(numpy_helper.to_array(initializers[name]).copy()) for name in read & set(initializers)}
        return cls(_frontend_model(model, frontier), frontier, decoder, constants, timbre, model.graph.output[0].name)


@dataclass(frozen=True)
class PreparedPhrase:
    """A phrase's decoder inputs other than the timbre (durations, pitch, energy, text features are in them)."""

    frozen_values: dict[str, torch.Tensor]


class DifferentiableKokoro:
    """Kokoro-82M whose decoder is float32 torch, differentiable in the timbre (style dims 0-127).

    ``device``: torch device name for the decoder ("cpu", "cuda"; its weights take about 210 MB);
    the frontend runs in onnxruntime on the CPU with ``frontend_threads`` threads. The decoder's
    integer convolutions compute in bfloat16 (float32 accumulation) where the device has fast
    bfloat16 (AMX / AVX-512 BF16 CPUs, CUDA), else in float32; ``bfloat16`` forces either.
    """

    def __init__(
        self, graph: KokoroGraph, device: str = "cpu", frontend_threads: int = 1, bfloat16: bool | None = None
    ) -> None:
        self.device = torch.device(device)
        self._frontend = _onnx_session(graph.frontend_model, frontend_threads)
        self._frontier = graph.frontier
        self._decoder = _without_dead_nodes(_fused(graph.decoder, graph.constants), graph.output)
        use_bfloat16 = _has_fast_bfloat16(self.device) if bfloat16 is None else bfloat16
        weights = _centred_weights(graph.decoder, graph.constants, torch.bfloat16 if use_bfloat16 else torch.float32)
        self._constants = {name: value.to(self.device) for name, value in weights.items()}
        self._timbre = graph.timbre
        self._output = graph.output
        self._releases = _last_uses(self._decoder, keep={graph.output})

    def __call__(self, tokens: torch.Tensor, style: torch.Tensor, speed: float = 1.0) -> torch.Tensor:
        """24 kHz speech ``[samples]`` for phoneme ids ``[T]`` (no padding zeros) and a style ``[256]``.

        Differentiable in ``style[:128]``; ``style[128:]`` sets durations, pitch and energy, without gradients.
        """
        return self.render(self.prepare(tokens, style.detach(), speed), style[:KOKORO_DECODER_STYLE_DIMS])

    def prepare(self, tokens: Sequence[int] | torch.Tensor, style: np.ndarray | torch.Tensor, speed: float = 1.0) -> PreparedPhrase:
        """Run the frontend once for phoneme ids ``[T]`` and a style ``[256]`` (only its prosody half matters)."""
        token_ids = np.asarray(tokens.cpu() if isinstance(tokens, torch.Tensor) else tokens, dtype=np.int64).reshape(-1)
        style_row = np.asarray(style.detach().cpu() if isinstance(style, torch.Tensor) else style, dtype=np.float32)
        if not 0 < token_ids.size <= KOKORO_MAX_TOKENS:
            raise InvalidTextError(f"Kokoro speaks 1-{KOKORO_MAX_TOKENS} phonemes at a time, got {token_ids.size}")
        if style_row.shape != (KOKORO_STYLE_SIZE,) or not np.all(np.isfinite(style_row)):
            raise SynthesisError(f"a Kokoro style is a finite [{KOKORO_STYLE_SIZE}] vector, got shape {style_row.shape}")
        feed = {
            TOKENS_INPUT: np.pad(token_ids, 1).reshape(1, -1),
            STYLE_INPUT: style_row.reshape(1, -1),
            SPEED_INPUT: np.array([speed], dtype=np.float32),
        }
        try:
            outputs = self._frontend.run(list(self._frontier), feed)
        except Exception as error:  # onnxruntime raises its own untyped errors
            raise SynthesisError(f"Kokoro's frontend failed: {error}") from error
        values = {name: torch.from_numpy(value).to(self.device) for name, value in zip(self._frontier, outputs)}
        return PreparedPhrase(values)

    def render(self, phrase: PreparedPhrase, timbre: torch.Tensor) -> torch.Tensor:
        """24 kHz speech ``[samples]`` of a prepared phrase with the decoder style ``timbre`` ``[128]``."""
        values = {**self._constants, **phrase.frozen_values, self._timbre: timbre.reshape(1, -1).to(self.device)}
        for node, released in zip(self._decoder, self._releases):
            inputs = [values[name] if name else None for name in node.inputs]
            try:
                outputs = _OPERATORS[node.op_type](inputs, node.attributes)
            except (RuntimeError, ValueError, IndexError) as error:
                raise SynthesisError(f"the torch decoder failed at {node.op_type} {node.outputs[0]}: {error}") from error
            values.update(zip(node.outputs, outputs))
            for name in released:
                del values[name]
        return values[self._output].reshape(-1)


def _has_fast_bfloat16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def _graph_node(node, attribute_value: Callable) -> GraphNode:
    attributes = {attribute.name: attribute_value(attribute) for attribute in node.attribute}
    return GraphNode(
        node.op_type,
        tuple(node.input),
        tuple(node.output),
        {name: value.decode() if isinstance(value, bytes) else value for name, value in attributes.items()},
    )


def _timbre_value(nodes: Sequence[GraphNode]) -> str:
    """The graph value holding ``style[:, :128]``: the first output of the Split of the style input."""
    for node in nodes:
        if STYLE_INPUT in node.inputs and node.op_type == "Split":
            return node.outputs[0]
    raise SynthesisError("the Kokoro graph does not split its style input as expected")


def _nodes_reached_from(nodes: Sequence[GraphNode], source: str) -> tuple[GraphNode, ...]:
    reached = {source}
    downstream = []
    for node in nodes:
        if reached.intersection(node.inputs):
            downstream.append(node)
            reached.update(node.outputs)
    return tuple(downstream)


def _frontend_model(model, outputs: Sequence[str]) -> bytes:
    """The ONNX model pruned to the nodes that ``outputs`` need, with those as its outputs."""
    from onnx import helper

    needed, kept = set(outputs), []
    for node in reversed(model.graph.node):
        if needed.intersection(node.output):
            kept.append(node)
            needed.update(name for name in node.input if name)
    value_types = {info.name: info for info in model.graph.value_info}
    graph = helper.make_graph(
        list(reversed(kept)),
        "kokoro_frontend",
        list(model.graph.input),
        [value_types[name] for name in outputs],
        [tensor for tensor in model.graph.initializer if tensor.name in needed],
    )
    frontend = helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version)
    return frontend.SerializeToString()


def _onnx_session(model: bytes, threads: int):
    try:
        import onnxruntime
    except ImportError as error:
        raise ExternalToolMissingError("Kokoro's frontend needs onnxruntime") from error
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


def _cache_fields(graph: KokoroGraph) -> dict:
    return {
        "format": GRAPH_CACHE_FORMAT,
        "frontend_model": graph.frontend_model,
        "frontier": list(graph.frontier),
        "decoder": [[node.op_type, list(node.inputs), list(node.outputs), node.attributes] for node in graph.decoder],
        "constants": graph.constants,
        "timbre": graph.timbre,
        "output": graph.output,
    }


def _graph_fields(cached: dict) -> dict:
    return {
        "frontend_model": cached["frontend_model"],
        "frontier": tuple(cached["frontier"]),
        "decoder": tuple(GraphNode(op, tuple(inputs), tuple(outputs), attributes) for op, inputs, outputs, attributes in cached["decoder"]),
        "constants": cached["constants"],
        "timbre": cached["timbre"],
        "output": cached["output"],
    }


def _centred_weights(
    nodes: Sequence[GraphNode], constants: dict[str, torch.Tensor], convolution_dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    """Constants in float32 where they are int8/uint8, the weights of integer matmuls and convolutions
    less their zero points (the operators then read those zero points as zero); convolution
    weights in ``convolution_dtype`` (bfloat16 holds these integers, |w| <= 255, exactly)."""
    floats = {
        name: value.to(torch.float32) if value.dtype in (torch.int8, torch.uint8) else value
        for name, value in constants.items()
    }
    for node in nodes:
        if node.op_type in ("MatMulInteger", "ConvInteger") and len(node.inputs) > 3 and node.inputs[1] in floats:
            weight, zero_point = floats[node.inputs[1]], floats[node.inputs[3]]
            if zero_point.numel() > 1:  # per output channel: the last axis of a matmul, the first of a convolution
                zero_point = zero_point.reshape((-1,) if node.op_type == "MatMulInteger" else (-1,) + (1,) * (weight.ndim - 1))
            centred = weight - zero_point
            floats[node.inputs[1]] = centred.to(convolution_dtype) if node.op_type == "ConvInteger" else centred
    return floats


def _last_uses(nodes: Sequence[GraphNode], keep: set[str]) -> list[tuple[str, ...]]:
    """For each node, the values no later node reads (dropped after it, so that memory follows the graph)."""
    last_reader = {}
    for index, node in enumerate(nodes):
        last_reader.update((name, index) for name in node.inputs if name)
        for name in node.outputs:
            last_reader.setdefault(name, index)
    releases = [[] for _ in nodes]
    for name, index in last_reader.items():
        if name not in keep:
            releases[index].append(name)
    return [tuple(names) for names in releases]


def _fused(nodes: Sequence[GraphNode], constants: dict[str, torch.Tensor]) -> tuple[GraphNode, ...]:
    """The decoder with its instance normalisations, and the generator's AdaIN + Snake units, each as one node.

    Same arithmetic, fewer passes over the audio-rate tensors and far less for autograd to keep:
    ``snake(instance_norm(x) * scale + shift)`` with ``snake(h) = h + sin(alpha * h)^2 / alpha``
    becomes ``FusedAdaInSnake`` (which keeps only ``x`` and recomputes the rest for the gradient),
    any other ``(x - mean) / sqrt(mean((x - mean)^2) + eps)`` over the last axis ``FusedInstanceNorm``.
    """
    producers = {output: node for node in nodes for output in node.outputs}
    reads = Counter(name for node in nodes for name in node.inputs)
    fused, absorbed = {}, set()
    for matcher in (_adain_snake_match, _instance_norm_match):
        for node in nodes:
            match = None if id(node) in absorbed else matcher(node, producers, reads, constants)
            if match is not None:
                fused[id(node)] = match[0]
                absorbed.update(id(part) for part in match[1])
    return tuple(fused.get(id(node), node) for node in nodes if id(node) not in absorbed)


def _producer(name: str, op_type: str, producers: dict, reads: Counter, times_read: int = 1) -> GraphNode | None:
    """The node of type ``op_type`` making ``name``, when ``name`` is read ``times_read`` times (by the pattern alone)."""
    node = producers.get(name)
    return node if node is not None and node.op_type == op_type and reads[name] == times_read else None


def _instance_norm_parts(node: GraphNode, producers: dict, reads: Counter, constants: dict) -> tuple[str, str, list] | None:
    """For the ``Div`` ending an instance normalisation: its input, its epsilon and its other nodes."""
    if node.op_type != "Div":
        return None
    centred, deviation = node.inputs
    root = _producer(deviation, "Sqrt", producers, reads)
    shifted = root and _producer(root.inputs[0], "Add", producers, reads)
    variance = shifted and _producer(shifted.inputs[0], "ReduceMean", producers, reads)
    squares = variance and _producer(variance.inputs[0], "Mul", producers, reads)
    difference = squares and _producer(centred, "Sub", producers, reads, times_read=3)
    mean = difference and _producer(difference.inputs[1], "ReduceMean", producers, reads)
    if not (mean and squares.inputs == (centred, centred) and mean.inputs[0] == difference.inputs[0]):
        return None
    if not all(part.inputs[1] in constants and _ints(constants[part.inputs[1]]) in ([-1], [2]) for part in (mean, variance)):
        return None
    epsilon = shifted.inputs[1]
    if epsilon not in constants or constants[epsilon].numel() != 1:
        return None
    return difference.inputs[0], epsilon, [mean, difference, squares, variance, shifted, root]


def _instance_norm_match(node: GraphNode, producers: dict, reads: Counter, constants: dict) -> tuple[GraphNode, list] | None:
    parts = _instance_norm_parts(node, producers, reads, constants)
    if parts is None:
        return None
    source, epsilon, absorbed = parts
    return GraphNode("FusedInstanceNorm", (source, epsilon), node.outputs, {}), absorbed


def _snake_parts(node: GraphNode, producers: dict, reads: Counter, constants: dict) -> tuple[str, str, str, list] | None:
    """For the ``Add`` ending ``h + (1 / alpha) * sin(alpha * h)^2``: ``h``, ``alpha``, ``1 / alpha`` and the other nodes."""
    if node.op_type != "Add":
        return None
    for source, term in (node.inputs, node.inputs[::-1]):
        scaled = _producer(term, "Mul", producers, reads)
        squared = scaled and _producer(_variable_input(scaled, constants), "Pow", producers, reads)
        sine = squared and _producer(squared.inputs[0], "Sin", producers, reads)
        argument = sine and _producer(sine.inputs[0], "Mul", producers, reads)
        if not (argument and _variable_input(argument, constants) == source and squared.inputs[1] in constants):
            continue
        alpha, inverse_alpha = _constant_input(argument, constants), _constant_input(scaled, constants)
        if alpha is not None and inverse_alpha is not None and _ints(constants[squared.inputs[1]]) == [2]:
            return source, alpha, inverse_alpha, [argument, sine, squared, scaled]
    return None


def _adain_snake_match(node: GraphNode, producers: dict, reads: Counter, constants: dict) -> tuple[GraphNode, list] | None:
    snake = _snake_parts(node, producers, reads, constants)
    modulated = snake and _producer(snake[0], "Add", producers, reads, times_read=2)
    if not modulated:
        return None
    for product, shift in (modulated.inputs, modulated.inputs[::-1]):
        scaling = _producer(product, "Mul", producers, reads)
        for scale, normalised in (scaling.inputs, scaling.inputs[::-1]) if scaling else ():
            division = _producer(normalised, "Div", producers, reads, times_read=reads[normalised])
            norm = division and _instance_norm_parts(division, producers, reads, constants)
            if norm:
                source, epsilon, norm_parts = norm
                _, alpha, inverse_alpha, snake_parts = snake
                fused = GraphNode("FusedAdaInSnake", (source, epsilon, scale, shift, alpha, inverse_alpha), node.outputs, {})
                # a normalisation the graph shares between units stays for the others (and goes once none reads it)
                shared = reads[normalised] > 1
                return fused, [*([] if shared else [*norm_parts, division]), scaling, modulated, *snake_parts]
    return None


def _without_dead_nodes(nodes: Sequence[GraphNode], output: str) -> tuple[GraphNode, ...]:
    """``nodes`` less those whose outputs nothing reads (after fusion, normalisations every reader recomputes)."""
    live, kept = {output}, []
    for node in reversed(nodes):
        if live.intersection(node.outputs):
            kept.append(node)
            live.update(node.inputs)
    return tuple(reversed(kept))


def _constant_input(node: GraphNode, constants: dict) -> str | None:
    names = [name for name in node.inputs if name in constants]
    return names[0] if len(names) == 1 else None


def _variable_input(node: GraphNode, constants: dict) -> str | None:
    names = [name for name in node.inputs if name not in constants]
    return names[0] if len(names) == 1 else None


# ---- the decoder's operators: each takes its input tensors (None where omitted) and attributes, returns its outputs

Operator = Callable[[list, dict], Sequence[torch.Tensor]]


def _elementwise(function: Callable[..., torch.Tensor]) -> Operator:
    return lambda inputs, attributes: (function(*inputs),)


def _divide(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    if numerator.is_floating_point() or denominator.is_floating_point():
        return numerator / denominator
    return torch.div(numerator, denominator, rounding_mode="trunc")


def _power(base: torch.Tensor, exponent: torch.Tensor) -> torch.Tensor:
    """A one-number exponent (the graph squares with Pow) goes in as a Python float: torch's fast path."""
    return torch.pow(base, exponent.item() if exponent.numel() == 1 else exponent)


def _ints(tensor: torch.Tensor) -> list[int]:
    return [int(value) for value in tensor.reshape(-1).tolist()]


def _cast(inputs, attributes):
    return (inputs[0].to(_ONNX_DTYPES[attributes["to"]]),)


def _shape(inputs, attributes):
    return (torch.tensor(inputs[0].shape[attributes.get("start", 0):], dtype=torch.int64, device=inputs[0].device),)


def _reshape(inputs, attributes):
    data, shape = inputs[0], _ints(inputs[1])
    return (data.reshape([data.shape[axis] if size == 0 else size for axis, size in enumerate(shape)]),)


def _unsqueeze(inputs, attributes):
    data, axes = inputs[0], _ints(inputs[1])
    for axis in sorted(axis % (data.ndim + len(axes)) for axis in axes):
        data = data.unsqueeze(axis)
    return (data,)


def _squeeze(inputs, attributes):
    data = inputs[0]
    axes = _ints(inputs[1]) if len(inputs) > 1 else [axis for axis, size in enumerate(data.shape) if size == 1]
    return (data.squeeze(tuple(axis % data.ndim for axis in axes)),)


def _transpose(inputs, attributes):
    return (inputs[0].permute(attributes["perm"]),)


def _concat(inputs, attributes):
    return (torch.cat(inputs, dim=attributes["axis"]),)


def _split(inputs, attributes):
    return torch.split(inputs[0], _ints(inputs[1]), dim=attributes.get("axis", 0))


def _slice(inputs, attributes):
    data, starts, ends = inputs[0], _ints(inputs[1]), _ints(inputs[2])
    axes = _ints(inputs[3]) if len(inputs) > 3 and inputs[3] is not None else list(range(len(starts)))
    steps = _ints(inputs[4]) if len(inputs) > 4 and inputs[4] is not None else [1] * len(starts)
    if min(steps) < 1:
        raise ValueError("Slice with a step under 1 is not supported")
    index = [slice(None)] * data.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        index[axis] = slice(*slice(start, end).indices(data.shape[axis])[:2], step)
    return (data[tuple(index)],)


def _gather(inputs, attributes):
    data, indices = inputs
    axis = attributes.get("axis", 0) % data.ndim
    indices = torch.where(indices < 0, indices + data.shape[axis], indices)
    picked = torch.index_select(data, axis, indices.reshape(-1))
    return (picked.reshape(data.shape[:axis] + indices.shape + data.shape[axis + 1:]),)


def _expand(inputs, attributes):
    return (inputs[0].expand(np.broadcast_shapes(tuple(inputs[0].shape), tuple(_ints(inputs[1])))),)


def _range(inputs, attributes):
    start, limit, delta = inputs
    return (torch.arange(start.item(), limit.item(), delta.item(), dtype=start.dtype, device=start.device),)


def _reduce_mean(inputs, attributes):
    axes = _ints(inputs[1]) if len(inputs) > 1 else list(range(inputs[0].ndim))
    return (torch.mean(inputs[0], dim=axes, keepdim=bool(attributes.get("keepdims", 1))),)


def _where(inputs, attributes):
    return (torch.where(*inputs),)


def _leaky_relu(inputs, attributes):
    return (F.leaky_relu(inputs[0], attributes.get("alpha", 0.01)),)


def _dynamic_quantize_linear(inputs, attributes):
    """Activations stay float: scale 1, zero point 0 (see the module docstring)."""
    data = inputs[0]
    return data, torch.ones((), device=data.device), torch.zeros((), device=data.device)


def _matmul_integer(inputs, attributes):
    """``(a - a_zero) @ w``: the weight's zero point was subtracted when the decoder was loaded."""
    return (inputs[0] @ inputs[1],)


def _convolution_options(attributes) -> dict:
    pads = attributes.get("pads", [0, 0])
    if pads[0] != pads[1]:
        raise ValueError(f"asymmetric convolution padding {pads} is not supported")
    return {
        "stride": attributes.get("strides", [1])[0],
        "padding": pads[0],
        "dilation": attributes.get("dilations", [1])[0],
        "groups": attributes.get("group", 1),
    }


def _conv(inputs, attributes):
    return (F.conv1d(inputs[0], inputs[1], inputs[2] if len(inputs) > 2 else None, **_convolution_options(attributes)),)


def _conv_integer(inputs, attributes):
    """``conv(x - x_zero, w)`` in float32, computed in the weight's dtype (its zero point was
    subtracted when the decoder was loaded, and the activations' zero point is 0)."""
    activations, weight = inputs[0], inputs[1]
    return (F.conv1d(activations.to(weight.dtype), weight, None, **_convolution_options(attributes)).float(),)


def _conv_transpose(inputs, attributes):
    bias = inputs[2] if len(inputs) > 2 else None
    output_padding = attributes.get("output_padding", [0])[0]
    return (F.conv_transpose1d(inputs[0], inputs[1], bias, output_padding=output_padding, **_convolution_options(attributes)),)


def _pad(inputs, attributes):
    data, pads = inputs[0], _ints(inputs[1])
    begins, ends = pads[: data.ndim], pads[data.ndim:]
    if any(begins[:-1]) or any(ends[:-1]) or attributes.get("mode", "constant") != "reflect":
        raise ValueError("only reflection padding of the last axis is supported")
    return (F.pad(data, (begins[-1], ends[-1]), mode="reflect"),)


def _resize(inputs, attributes):
    data, scales = inputs[0], inputs[2].tolist()
    nearest = (attributes.get("mode"), attributes.get("coordinate_transformation_mode"), attributes.get("nearest_mode"))
    if data.ndim != 3 or any(scale != 1.0 for scale in scales[:-1]) or nearest != ("nearest", "asymmetric", "floor"):
        raise ValueError("only nearest-neighbour resizing of the last axis of a 3-d tensor is supported")
    return (F.interpolate(data, scale_factor=scales[-1], mode="nearest"),)


def _fused_instance_norm(inputs, attributes):
    data, epsilon = inputs
    return (F.instance_norm(data, eps=epsilon.item()),)


class _AdaInSnake(torch.autograd.Function):
    """``snake(instance_norm(x) * scale + shift)``, ``snake(h) = h + sin(alpha * h)^2 * inverse_alpha``, over the last axis.

    Keeps ``x`` and its statistics for the gradient and recomputes the rest, so autograd holds
    one tensor per unit instead of seven. ``scale`` and ``shift`` (from the timbre) get gradients.
    """

    @staticmethod
    def forward(ctx, data, epsilon, scale, shift, alpha, inverse_alpha):
        mean = data.mean(dim=-1, keepdim=True)
        inverse_deviation = torch.rsqrt(data.var(dim=-1, unbiased=False, keepdim=True) + epsilon)
        modulated = torch.addcmul(shift, (data - mean).mul_(inverse_deviation), scale)
        ctx.save_for_backward(data, mean, inverse_deviation, scale, shift, alpha, inverse_alpha)
        return torch.sin(alpha * modulated).square_().mul_(inverse_alpha).add_(modulated)

    @staticmethod
    def backward(ctx, gradient):
        data, mean, inverse_deviation, scale, shift, alpha, inverse_alpha = ctx.saved_tensors
        normalised = (data - mean).mul_(inverse_deviation)
        modulated = torch.addcmul(shift, normalised, scale)
        # d snake / dh = 1 + 2 sin(alpha h) cos(alpha h) alpha inverse_alpha = 1 + sin(2 alpha h) alpha inverse_alpha
        slope = torch.sin((2 * alpha) * modulated).mul_(alpha * inverse_alpha).add_(1.0)
        modulated_gradient = slope.mul_(gradient)
        scale_gradient = (modulated_gradient * normalised).sum(dim=-1, keepdim=True)
        shift_gradient = modulated_gradient.sum(dim=-1, keepdim=True)
        normalised_gradient = modulated_gradient.mul_(scale)
        data_gradient = (
            normalised_gradient
            - normalised_gradient.mean(dim=-1, keepdim=True)
            - normalised * (normalised_gradient * normalised).mean(dim=-1, keepdim=True)
        ).mul_(inverse_deviation)
        return (
            data_gradient,
            None,
            scale_gradient.sum_to_size(scale.shape),
            shift_gradient.sum_to_size(shift.shape),
            None,
            None,
        )


def _fused_adain_snake(inputs, attributes):
    data, epsilon, scale, shift, alpha, inverse_alpha = inputs
    return (_AdaInSnake.apply(data, epsilon.item(), scale, shift, alpha, inverse_alpha),)


def _non_zero(inputs, attributes):
    return (torch.nonzero(inputs[0]).T.contiguous(),)


def _scatter_nd(inputs, attributes):
    data, indices, updates = inputs
    if attributes.get("reduction", "none") != "none":
        raise ValueError("ScatterND with a reduction is not supported")
    return (data.index_put(tuple(indices.unbind(-1)), updates),)


_OPERATORS: dict[str, Operator] = {
    "Add": _elementwise(torch.add),
    "Sub": _elementwise(torch.sub),
    "Mul": _elementwise(torch.mul),
    "Div": _elementwise(_divide),
    "Pow": _elementwise(_power),
    "Sqrt": _elementwise(torch.sqrt),
    "Exp": _elementwise(torch.exp),
    "Sin": _elementwise(torch.sin),
    "Cos": _elementwise(torch.cos),
    "Floor": _elementwise(torch.floor),
    "Equal": _elementwise(torch.eq),
    "Greater": _elementwise(torch.gt),
    "Where": _where,
    "Cast": _cast,
    "Shape": _shape,
    "Reshape": _reshape,
    "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze,
    "Transpose": _transpose,
    "Concat": _concat,
    "Split": _split,
    "Slice": _slice,
    "Gather": _gather,
    "Expand": _expand,
    "Range": _range,
    "ReduceMean": _reduce_mean,
    "LeakyRelu": _leaky_relu,
    "DynamicQuantizeLinear": _dynamic_quantize_linear,
    "MatMulInteger": _matmul_integer,
    "ConvInteger": _conv_integer,
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    "Pad": _pad,
    "Resize": _resize,
    "NonZero": _non_zero,
    "FusedInstanceNorm": _fused_instance_norm,
    "FusedAdaInSnake": _fused_adain_snake,
    "ScatterND": _scatter_nd,
}
