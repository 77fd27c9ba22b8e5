"""The reference Einsum, Attention, RotaryEmbedding, LSTM, GRU and RNN against onnxruntime on
one-node models, and the constraints their checks enforce."""

from __future__ import annotations

import numpy as np
import pytest
from core.node_harness import assert_same_outputs, run_onnxruntime, run_reference
from onnx import TensorProto, helper

import byoc
from byoc.core.flops import node_macs
from byoc.core.interpreter import lookup
from byoc.core.ir import Node
from byoc.errors import ExecutionError
from byoc.testing import make_model

ort = pytest.importorskip("onnxruntime")


def check(op_type: str, inputs: list[np.ndarray | None], opset: int, n_outputs: int = 1,
          rtol: float = 1e-5, **attrs) -> None:
    ours = run_reference(op_type, inputs, opset, n_outputs, **attrs)
    expected = run_onnxruntime(op_type, inputs, opset, n_outputs, **attrs)
    assert_same_outputs(ours, expected, exact=False, rtol=rtol, atol=rtol)


def check_fails(op_type: str, inputs: list[np.ndarray | None], opset: int, message: str,
                **attrs) -> None:
    """The node's check refuses the inputs (with ``message``), and so does running it."""
    node = Node(op_type, [f"in{i}" for i in range(len(inputs))], ["out"], attrs)
    impl = lookup("", op_type)(node, [None], opset)
    with pytest.raises(ValueError, match=message):
        impl.check(*inputs, **attrs)
    with pytest.raises(ExecutionError, match=message):
        run_reference(op_type, inputs, opset, **attrs)


@pytest.fixture
def rng():
    return np.random.default_rng(2024)


def floats(rng, *shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


# -- Einsum ---------------------------------------------------------------------------------

@pytest.mark.parametrize("equation, shapes", [
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("bhqd,bhkd->bhqk", [(1, 2, 3, 4), (1, 2, 5, 4)]),
    ("ij,kj->ki", [(3, 4), (5, 4)]),
    ("ij->ji", [(3, 4)]),
    ("ij->", [(3, 4)]),
    ("ii->i", [(4, 4)]),
    ("bii->bi", [(2, 3, 3)]),
    ("...ij,...jk->...ik", [(2, 3, 4, 5), (1, 3, 5, 2)]),
    ("...ij,jk", [(2, 3, 4), (4, 5)]),
    ("ij,j", [(3, 4), (4,)]),
    ("i,j->ij", [(3,), (4,)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("BIj, Bjk -> BkI", [(2, 3, 4), (2, 4, 5)]),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_einsum(rng, equation, shapes, dtype):
    if np.issubdtype(dtype, np.integer):
        inputs = [rng.integers(-9, 9, shape).astype(dtype) for shape in shapes]
    else:
        inputs = [floats(rng, *shape, dtype=dtype) for shape in shapes]
    check("Einsum", inputs, 12, equation=equation)


def test_einsum_sums_ellipsis_axes_the_output_leaves_out(rng):
    x = floats(rng, 2, 3, 4)
    (y,) = run_reference("Einsum", [x], 12, equation="...ij->ij")
    np.testing.assert_allclose(y, x.sum(axis=0), rtol=1e-6)


@pytest.mark.parametrize("equation, shapes, message", [
    ("ij,jk->ik", [(2, 3), (4, 5)], "subscript 'j' is 3 long"),
    ("ijk->i", [(2, 3)], "does not fit input 0"),
    ("ij,jk->ik", [(2, 3)], "2 input terms but the node has 1"),
    ("ij->iz", [(2, 3)], "output subscript 'z'"),
    ("i1->i", [(2, 3)], "'1' is not a subscript"),
    ("...ij,...jk->...ik", [(2, 3, 4), (3, 4, 5)], "do not broadcast"),
])
def test_einsum_rejects(rng, equation, shapes, message):
    check_fails("Einsum", [floats(rng, *shape) for shape in shapes], 12, message,
                equation=equation)


# -- Attention ------------------------------------------------------------------------------

@pytest.mark.parametrize("q_heads, kv_heads", [(4, 4), (4, 2), (4, 1)])
@pytest.mark.parametrize("is_causal", [0, 1])
def test_attention_4d(rng, q_heads, kv_heads, is_causal):
    q, k, v = floats(rng, 2, q_heads, 5, 8), floats(rng, 2, kv_heads, 7, 8), \
        floats(rng, 2, kv_heads, 7, 6)
    check("Attention", [q, k, v], 23, is_causal=is_causal)


@pytest.mark.parametrize("mask_shape", [(5, 7), (4, 5, 7), (2, 1, 5, 7), (2, 4, 5, 7)])
@pytest.mark.parametrize("bool_mask", [False, True])
def test_attention_masks(rng, mask_shape, bool_mask):
    q, k, v = floats(rng, 2, 4, 5, 8), floats(rng, 2, 4, 7, 8), floats(rng, 2, 4, 7, 8)
    mask = rng.random(mask_shape) > 0.3 if bool_mask else floats(rng, *mask_shape)
    check("Attention", [q, k, v, mask], 23)


def test_attention_rank_1_mask_broadcasts_over_the_queries(rng):
    # onnxruntime takes masks of rank 2 to 4 only; the spec lets any broadcastable mask in.
    q, k, v = floats(rng, 2, 4, 5, 8), floats(rng, 2, 4, 7, 8), floats(rng, 2, 4, 7, 8)
    mask = rng.random(7) > 0.3
    (y,) = run_reference("Attention", [q, k, v, mask], 23)
    (expected,) = run_reference("Attention", [q, k, v, np.broadcast_to(mask, (5, 7))], 23)
    np.testing.assert_array_equal(y, expected)


def test_attention_3d_gqa_with_cache_scale_and_causal_mask(rng):
    q, k, v = floats(rng, 2, 3, 32), floats(rng, 2, 3, 16), floats(rng, 2, 3, 12)
    past_key, past_value = floats(rng, 2, 2, 4, 8), floats(rng, 2, 2, 4, 6)
    mask = floats(rng, 3, 7)
    check("Attention", [q, k, v, mask, past_key, past_value], 23, n_outputs=3,
          q_num_heads=4, kv_num_heads=2, is_causal=1, scale=0.25)


@pytest.mark.parametrize("mode", [0, 3])
def test_attention_qk_matmul_output(rng, mode):
    q, k, v = floats(rng, 1, 2, 4, 8), floats(rng, 1, 2, 3, 8), floats(rng, 1, 2, 3, 8)
    past = [floats(rng, 1, 2, 2, 8), floats(rng, 1, 2, 2, 8)]
    check("Attention", [q, k, v, floats(rng, 4, 5), *past], 23, n_outputs=4, is_causal=1,
          qk_matmul_output_mode=mode)


def test_attention_external_cache_masks_padding_and_offsets_causality(rng):
    q, k, v = floats(rng, 2, 2, 3, 4), floats(rng, 2, 2, 6, 4), floats(rng, 2, 2, 6, 4)
    check("Attention", [q, k, v, None, None, None, np.array([4, 6], np.int64)], 24,
          is_causal=1)


def test_attention_fully_masked_rows_give_zeros(rng):
    q, k, v = floats(rng, 1, 1, 2, 4), floats(rng, 1, 1, 3, 4), floats(rng, 1, 1, 3, 4)
    mask = np.array([[True, False, True], [False, False, False]])
    (y,) = run_reference("Attention", [q, k, v, mask], 23)
    assert np.all(y[0, 0, 1] == 0) and np.all(np.isfinite(y))


def test_attention_softcap_and_sliding_window(rng):
    q, k, v = floats(rng, 1, 2, 6, 4) * 3, floats(rng, 1, 2, 6, 4) * 3, floats(rng, 1, 2, 6, 4)
    (y,) = run_reference("Attention", [q, k, v], 25, softcap=2.0, left_window_size=1,
                         right_window_size=1)
    scores = np.einsum("bhqd,bhkd->bhqk", q.astype(np.float64), k.astype(np.float64)) / 2
    scores = 2.0 * np.tanh(scores / 2.0)
    distance = np.arange(6)[:, None] - np.arange(6)[None, :]
    scores = np.where(np.abs(distance) <= 1, scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    np.testing.assert_allclose(y, weights @ v, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("inputs, attrs, opset, message", [
    ([(1, 3, 4, 8), (1, 2, 4, 8), (1, 2, 4, 8)], {}, 23, "multiple of kv heads"),
    ([(1, 2, 4, 8), (1, 2, 4, 6), (1, 2, 4, 8)], {}, 23, "head sizes differ"),
    ([(1, 4, 8), (1, 4, 8), (1, 4, 8)], {}, 23, "needs the q_num_heads"),
    ([(1, 4, 9), (1, 4, 8), (1, 4, 8)], {"q_num_heads": 2, "kv_num_heads": 2}, 23,
     "not a multiple of its 2 heads"),
    ([(1, 2, 4, 8), (1, 2, 4, 8), (1, 2, 4, 8)], {"q_num_heads": 2}, 25,
     "drop the q_num_heads"),
    ([(1, 2, 4, 8), (1, 2, 4, 8), (1, 2, 4, 8), (3, 4)], {}, 23, "does not broadcast"),
])
def test_attention_rejects(rng, inputs, attrs, opset, message):
    check_fails("Attention", [floats(rng, *shape) for shape in inputs], opset, message,
                **attrs)


def test_attention_rejects_half_a_cache(rng):
    q, k, v = floats(rng, 1, 2, 4, 8), floats(rng, 1, 2, 4, 8), floats(rng, 1, 2, 4, 8)
    check_fails("Attention", [q, k, v, None, floats(rng, 1, 2, 3, 8)], 23,
                "past_key and past_value together")


# -- RotaryEmbedding ------------------------------------------------------------------------

@pytest.mark.parametrize("interleaved", [0, 1])
@pytest.mark.parametrize("rotary_dim", [0, 4])
def test_rotary_embedding_4d_without_position_ids(rng, interleaved, rotary_dim):
    half = (rotary_dim or 8) // 2
    check("RotaryEmbedding", [floats(rng, 2, 3, 5, 8), floats(rng, 2, 5, half),
                              floats(rng, 2, 5, half)], 23, interleaved=interleaved,
          rotary_embedding_dim=rotary_dim)


@pytest.mark.parametrize("interleaved", [0, 1])
def test_rotary_embedding_3d_with_position_ids(rng, interleaved):
    positions = rng.integers(0, 10, (2, 5)).astype(np.int64)
    check("RotaryEmbedding", [floats(rng, 2, 5, 24), floats(rng, 10, 2), floats(rng, 10, 2),
                              positions], 23, num_heads=3, rotary_embedding_dim=4,
          interleaved=interleaved)


@pytest.mark.parametrize("inputs, attrs, message", [
    ([(2, 5, 24), (2, 5, 4), (2, 5, 4)], {}, "needs a num_heads"),
    ([(2, 3, 5, 8), (2, 5, 3), (2, 5, 3)], {}, "expected \\[2, 5, 4\\]"),
    ([(2, 3, 5, 8), (2, 5, 2), (2, 5, 2)], {"rotary_embedding_dim": 5}, "must be even"),
])
def test_rotary_embedding_rejects(rng, inputs, attrs, message):
    check_fails("RotaryEmbedding", [floats(rng, *shape) for shape in inputs], 23, message,
                **attrs)


# -- LSTM, GRU, RNN -------------------------------------------------------------------------

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}


def recurrent_inputs(rng, op, direction, seq=4, batch=3, input_size=5, hidden=6,
                     lengths=False, initial=False, peepholes=False):
    gates, dirs = GATES[op], 2 if direction == "bidirectional" else 1
    inputs = [floats(rng, seq, batch, input_size), floats(rng, dirs, gates * hidden, input_size),
              floats(rng, dirs, gates * hidden, hidden), floats(rng, dirs, 2 * gates * hidden),
              rng.integers(1, seq + 1, batch).astype(np.int32) if lengths else None,
              floats(rng, dirs, batch, hidden) if initial else None]
    if op == "LSTM":
        inputs += [floats(rng, dirs, batch, hidden) if initial else None,
                   floats(rng, dirs, 3 * hidden) if peepholes else None]
    return inputs


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("lengths, initial", [(False, False), (True, True)])
def test_recurrent(rng, op, direction, lengths, initial):
    inputs = recurrent_inputs(rng, op, direction, lengths=lengths, initial=initial,
                              peepholes=initial)
    check(op, inputs, 22, n_outputs=3 if op == "LSTM" else 2, hidden_size=6,
          direction=direction)


@pytest.mark.parametrize("attrs", [
    {"linear_before_reset": 1},
    {"clip": 0.5},
    {"activations": ["HardSigmoid", "LeakyRelu"], "activation_alpha": [0.3, 0.2],
     "activation_beta": [0.4]},
    {"activations": ["Sigmoid", "Softsign", "ScaledTanh", "Elu"], "direction": "bidirectional",
     "activation_alpha": [0.7, 1.3], "activation_beta": [0.9]},
])
def test_gru_variants(rng, attrs):
    inputs = recurrent_inputs(rng, "GRU", attrs.get("direction", "forward"), lengths=True,
                              initial=True)
    check("GRU", inputs, 22, n_outputs=2, hidden_size=6, **attrs)


@pytest.mark.parametrize("attrs", [
    {"input_forget": 1},
    {"clip": 0.3, "direction": "bidirectional"},
    {"activations": ["Sigmoid", "Relu", "Affine"], "activation_alpha": [0.5],
     "activation_beta": [0.1]},
])
def test_lstm_variants(rng, attrs):
    inputs = recurrent_inputs(rng, "LSTM", attrs.get("direction", "forward"), lengths=True,
                              initial=True, peepholes=True)
    check("LSTM", inputs, 22, n_outputs=3, hidden_size=6, **attrs)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_recurrent_batch_first_layout_matches_sequence_first(rng, op):
    # onnxruntime has no layout=1, so the batch-first node is held to the sequence-first one.
    inputs = recurrent_inputs(rng, op, "bidirectional", lengths=True, initial=True,
                              peepholes=True)
    outputs = 3 if op == "LSTM" else 2
    expected = run_reference(op, inputs, 22, outputs, direction="bidirectional")
    batch_first = list(inputs)
    batch_first[0] = inputs[0].swapaxes(0, 1)
    for position in (5, 6)[:outputs - 1]:
        batch_first[position] = inputs[position].swapaxes(0, 1)
    got = run_reference(op, batch_first, 22, outputs, direction="bidirectional", layout=1)
    np.testing.assert_array_equal(got[0], expected[0].transpose(2, 0, 1, 3))
    for ours, theirs in zip(got[1:], expected[1:]):
        np.testing.assert_array_equal(ours, theirs.swapaxes(0, 1))


def test_recurrent_entries_past_their_length_give_zeros_and_keep_their_state(rng):
    inputs = recurrent_inputs(rng, "GRU", "forward", seq=5, initial=True)
    inputs[4] = np.array([0, 2, 5], np.int32)
    y, y_h = run_reference("GRU", inputs, 22, 2)
    assert np.all(y[:, :, 0] == 0) and np.all(y[2:, :, 1] == 0)
    np.testing.assert_array_equal(y_h[0, 0], inputs[5][0, 0].astype(np.float32))
    np.testing.assert_array_equal(y_h[0, 1], y[1, 0, 1])


@pytest.mark.parametrize("op, inputs, attrs, message", [
    ("LSTM", [(4, 3, 5), (1, 16, 5), (1, 16, 4)], {"hidden_size": 5}, "hidden_size 5"),
    ("GRU", [(4, 3, 5), (1, 12, 5), (1, 12, 3)], {}, "R has shape \\[1, 12, 3\\]"),
    ("RNN", [(4, 3, 5), (1, 4, 5), (1, 4, 4)], {"direction": "bidirectional"},
     "W has shape"),
    ("RNN", [(4, 3, 5), (1, 4, 5), (1, 4, 4)], {"direction": "sideways"}, "sideways"),
    ("GRU", [(4, 3, 5), (1, 12, 5), (1, 12, 4)], {"activations": ["Sigmoid"]},
     "2 activations per direction"),
])
def test_recurrent_rejects(rng, op, inputs, attrs, message):
    check_fails(op, [floats(rng, *shape) for shape in inputs], 22, message, **attrs)


def test_recurrent_rejects_an_unknown_activation(rng):
    with pytest.raises(ExecutionError, match="'Swish' is not one ONNX defines"):
        run_reference("RNN", recurrent_inputs(rng, "RNN", "forward"), 22, 2,
                      activations=["Swish"])


def test_recurrent_rejects_lengths_beyond_the_sequence(rng):
    inputs = recurrent_inputs(rng, "RNN", "forward", seq=4)
    inputs[4] = np.array([1, 5, 2], np.int32)
    with pytest.raises(ExecutionError, match="sequence_lens must lie in \\[0, 4\\]"):
        run_reference("RNN", inputs, 22, 2)


# -- Arithmetic work (the thread count of cpu_llvm follows it) --------------------------------

def _graph(op, inputs, outputs, opset, **attrs):
    node = helper.make_node(op, [name for name, _ in inputs], [name for name, _ in outputs],
                            **attrs)
    model = make_model([node], [(n, TensorProto.FLOAT, list(s)) for n, s in inputs if n],
                       [(n, TensorProto.FLOAT, list(s)) for n, s in outputs if n], opset=opset)
    return byoc.import_model(model)


@pytest.mark.parametrize("op, inputs, outputs, opset, attrs, macs", [
    ("Einsum", [("a", (2, 3, 4)), ("b", (2, 4, 5))], [("y", (2, 3, 5))], 12,
     {"equation": "bij,bjk->bik"}, 2 * 3 * 4 * 5),
    ("Einsum", [("a", (3, 4))], [("y", (3,))], 12, {"equation": "ij->i"}, 3 * 4),
    ("Attention", [("q", (1, 2, 3, 8)), ("k", (1, 2, 5, 8)), ("v", (1, 2, 5, 4))],
     [("y", (1, 2, 3, 4))], 23, {}, 2 * 3 * 5 * (8 + 4)),
    # An RNN whose Y is left out (the first output name empty) still counts its products.
    ("RNN", [("x", (4, 2, 3)), ("w", (1, 5, 3)), ("r", (1, 5, 5))],
     [("", None), ("y_h", (1, 2, 5))], 22, {"hidden_size": 5}, 4 * 2 * 5 * (3 + 5)),
])
def test_multiply_accumulates(op, inputs, outputs, opset, attrs, macs):
    graph = _graph(op, inputs, outputs, opset, **attrs)
    assert node_macs(graph.nodes[0], graph) == macs
