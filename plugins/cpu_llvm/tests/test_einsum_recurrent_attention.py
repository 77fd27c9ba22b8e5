"""cpu_llvm's Einsum (matrix-product forms), RNN/GRU/LSTM, Attention and RotaryEmbedding
kernels against the reference interpreter, on random shapes with one and two threads, and
the forms they decline with their reasons."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import byoc
from byoc.errors import ByocError
from byoc.testing import compile_reference, make_model

FLOAT = TensorProto.FLOAT


def compiled(model, threads: int):
    return byoc.compile(model, plugins=["cpu_llvm"], plugin_options={
        "cpu_llvm": {"threads": threads, "min_work_per_thread": 0}})


def check_claimed(model, feeds, rtol=1e-5) -> None:
    """Every node runs on cpu_llvm, and its outputs match the reference's."""
    reference = compile_reference(model).run(feeds)
    for threads in (1, 2):
        model_on_llvm = compiled(model, threads)
        assert [p.plugin for p in model_on_llvm.parts] == ["cpu_llvm"]
        ours = model_on_llvm.run(feeds)
        for name, expected in reference.items():
            assert ours[name].dtype == expected.dtype and ours[name].shape == expected.shape
            finite = expected[np.isfinite(expected)]
            scale = max(1.0, float(np.abs(finite).max())) if finite.size else 1.0
            np.testing.assert_allclose(ours[name], expected, rtol=rtol, atol=rtol * scale,
                                       err_msg=f"{name} with {threads} threads")


def decline_reasons(model) -> str:
    """What cpu_llvm said when it left the model's nodes to the reference."""
    plan = compiled(model, 1).plan
    reasons = [r for e in plan.explanations.values() if e.plugin != "cpu_llvm"
               for r in e.reasons.get("cpu_llvm", [])]
    assert reasons, "cpu_llvm claimed the node"
    return "; ".join(reasons)


def single_node(op, inputs, outputs, feeds, initializers=None, opset=23, **attrs):
    """A one-node model; ``inputs`` and ``outputs`` are names ('' for omitted ones); the
    model inputs are the ``feeds`` (by name) and the rest are ``initializers``."""
    node = helper.make_node(op, inputs, [name for name, _ in outputs], **attrs)
    graph_inputs = [(name, helper.np_dtype_to_tensor_dtype(value.dtype), list(value.shape))
                    for name, value in feeds.items()]
    graph_outputs = [(name, FLOAT, list(shape)) for name, shape in outputs]
    return make_model([node], graph_inputs, graph_outputs, initializers, opset=opset)


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def floats(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


# -- Einsum ---------------------------------------------------------------------------------

EINSUM_MATMULS = [
    "bij,bjk->bik", "ij,jk->ik", "ij,kj->ik", "ji,jk->ik", "ji,kj->ik", "bij,bjk->bki",
    "bhqd,bhkd->bhqk", "bhqk,bhkd->bhqd", "bij,jk->bik", "...ij,...jk->...ik", "i,i->",
    "i,j->ij", "ijk,jkl->il", "bi,bij->bj",
]


def einsum_shapes(rng, equation):
    """Random operand and output shapes for an explicit ``equation`` (``...`` is 2 axes)."""
    sizes = {letter: int(rng.integers(1, 12)) for letter in "bhijkldq"}
    ellipsis = [int(rng.integers(1, 4)) for _ in range(2)]
    left, out = equation.split("->")

    def shape(term):
        dims = []
        if term.startswith("..."):
            dims, term = list(ellipsis), term[3:]
        return tuple(dims + [sizes[letter] for letter in term])

    return [shape(term) for term in left.split(",")], shape(out)


@pytest.mark.parametrize("constant_b", [False, True])
@pytest.mark.parametrize("equation", EINSUM_MATMULS)
def test_einsum_matrix_products(rng, equation, constant_b):
    (a_shape, b_shape), out_shape = einsum_shapes(rng, equation)
    a, b = floats(rng, *a_shape), floats(rng, *b_shape)
    feeds = {"a": a} if constant_b else {"a": a, "b": b}
    model = single_node("Einsum", ["a", "b"], [("y", out_shape)], feeds,
                        {"b": b} if constant_b else None, opset=12, equation=equation)
    check_claimed(model, feeds)


def test_einsum_large_product_crosses_k_blocks(rng):
    a, b = floats(rng, 3, 37, 600), floats(rng, 3, 600, 70)
    feeds = {"a": a, "b": b}
    model = single_node("Einsum", ["a", "b"], [("y", (3, 37, 70))], feeds, opset=12,
                        equation="bij,bjk->bik")
    check_claimed(model, feeds, rtol=1e-4)


@pytest.mark.parametrize("equation, shapes, out_shape, reason", [
    ("ii,ij->j", [(4, 4), (4, 3)], (3,), "diagonals"),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)], (2, 5), "two operands only"),
    ("ij,kl->ik", [(2, 3), (4, 5)], (2, 4), "one operand alone"),
    ("bji,jk->bik", [(2, 3, 4), (3, 5)], (2, 4, 5), "two contiguous groups"),
    ("bij,jbk->bik", [(2, 3, 4), (4, 2, 5)], (2, 3, 5), "batch subscripts first"),
])
def test_einsum_declines_other_equations(rng, equation, shapes, out_shape, reason):
    feeds = {f"x{i}": floats(rng, *shape) for i, shape in enumerate(shapes)}
    model = single_node("Einsum", list(feeds), [("y", out_shape)], feeds, opset=12,
                        equation=equation)
    assert reason in decline_reasons(model)


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
@pytest.mark.parametrize("equation, shapes, out_shape", [
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)], (2, 3, 5)),
    ("i,i", [(6,), (6,)], ()),
    ("ij,jk", [(3, 4), (4, 5)], (3, 5)),
])
def test_einsum_wide_and_half_dtypes_untransposed(rng, dtype, equation, shapes, out_shape):
    feeds = {f"x{i}": rng.standard_normal(shape).astype(dtype) for i, shape in enumerate(shapes)}
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    node = helper.make_node("Einsum", list(feeds), ["y"], equation=equation)
    model = make_model([node], [(n, elem, list(v.shape)) for n, v in feeds.items()],
                       [("y", elem, list(out_shape))], opset=12)
    check_claimed(model, feeds, rtol=1e-3 if dtype == np.float16 else 1e-12)


def test_einsum_declines_transposed_float64():
    node = helper.make_node("Einsum", ["a", "b"], ["y"], equation="ij,kj->ik")
    model = make_model([node], [("a", TensorProto.DOUBLE, [2, 3]),
                                ("b", TensorProto.DOUBLE, [4, 3])],
                       [("y", TensorProto.DOUBLE, [2, 4])], opset=12)
    assert "untransposed products only" in decline_reasons(model)


# -- RNN, GRU, LSTM -------------------------------------------------------------------------

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}


def recurrent_model(rng, op, direction="forward", layout=0, lengths=False, initial=False,
                    peepholes=False, runtime_weights=False, seq=None, batch=None,
                    input_size=None, hidden=None, **attrs):
    """A one-node recurrent model with random sizes (unless given), and its feeds."""
    seq = seq or int(rng.integers(1, 7))
    batch = batch or int(rng.integers(1, 11))
    input_size = input_size or int(rng.integers(1, 20))
    hidden = hidden or int(rng.integers(1, 40))
    gates, dirs = GATES[op], 2 if direction == "bidirectional" else 1
    x_shape = (batch, seq, input_size) if layout else (seq, batch, input_size)
    state_shape = (batch, dirs, hidden) if layout else (dirs, batch, hidden)
    feeds = {"x": floats(rng, *x_shape)}
    weights = {"W": floats(rng, dirs, gates * hidden, input_size) * 0.5,
               "R": floats(rng, dirs, gates * hidden, hidden) * 0.5,
               "B": floats(rng, dirs, 2 * gates * hidden) * 0.5}
    names = ["x", "W", "R", "B", "", ""]
    if lengths:
        names[4] = "lengths"
        feeds["lengths"] = rng.integers(0, seq + 1, batch).astype(np.int32)
    if initial:
        names[5] = "h0"
        feeds["h0"] = floats(rng, *state_shape)
    if op == "LSTM":
        names += ["c0" if initial else "", "P" if peepholes else ""]
        if initial:
            feeds["c0"] = floats(rng, *state_shape)
        if peepholes:
            weights["P"] = floats(rng, dirs, 3 * hidden) * 0.5
    if runtime_weights:
        feeds.update(weights)
        weights = {}
    y_shape = (batch, seq, dirs, hidden) if layout else (seq, dirs, batch, hidden)
    outputs = [("y", y_shape), ("y_h", state_shape)]
    if op == "LSTM":
        outputs.append(("y_c", state_shape))
    model = single_node(op, names, outputs, feeds, weights, opset=22, hidden_size=hidden,
                        direction=direction, layout=layout, **attrs)
    return model, feeds


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("layout, lengths, initial", [(0, False, False), (1, True, True),
                                                      (0, True, True)])
def test_recurrent(rng, op, direction, layout, lengths, initial):
    model, feeds = recurrent_model(rng, op, direction, layout, lengths, initial,
                                   peepholes=initial)
    check_claimed(model, feeds)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_recurrent_with_weights_given_at_run_time(rng, op):
    model, feeds = recurrent_model(rng, op, "bidirectional", lengths=True, initial=True,
                                   peepholes=True, runtime_weights=True)
    check_claimed(model, feeds)


@pytest.mark.parametrize("op, attrs", [
    ("GRU", {"linear_before_reset": 1}),
    ("GRU", {"linear_before_reset": 1, "direction": "bidirectional", "clip": 0.4}),
    ("GRU", {"activations": ["HardSigmoid", "LeakyRelu"], "activation_alpha": [0.3, 0.1],
             "activation_beta": [0.4]}),
    ("LSTM", {"input_forget": 1, "clip": 0.5}),
    ("LSTM", {"activations": ["Sigmoid", "Softsign", "Elu"], "activation_alpha": [0.7]}),
    ("RNN", {"activations": ["Relu", "Softplus"], "direction": "bidirectional"}),
])
def test_recurrent_variants(rng, op, attrs):
    model, feeds = recurrent_model(rng, op, lengths=True, initial=True, peepholes=True,
                                   **attrs)
    check_claimed(model, feeds)


def test_lstm_large_hidden_crosses_k_blocks_and_micro_tiles(rng):
    model, feeds = recurrent_model(rng, "LSTM", "bidirectional", seq=3, batch=11,
                                   input_size=300, hidden=270)
    check_claimed(model, feeds, rtol=1e-4)


def test_recurrent_fault_on_lengths_beyond_the_sequence(rng):
    model, feeds = recurrent_model(rng, "GRU", seq=3, batch=2, lengths=True)
    feeds["lengths"] = np.array([1, 4], np.int32)
    # cpu_llvm's kernel reports the fault, then the reference it falls back to refuses too.
    with pytest.warns(UserWarning, match="cpu_llvm.*sequence_lens must lie in \\[0, 3\\]"), \
            pytest.raises(ByocError, match="sequence_lens must lie in \\[0, 3\\]"):
        compiled(model, 1).run(feeds)


def test_recurrent_declines_activations_it_does_not_emit(rng):
    model, _ = recurrent_model(rng, "RNN", activations=["ScaledTanh"])
    assert "does not emit the activation(s) scaledtanh" in decline_reasons(model)


# -- Attention ------------------------------------------------------------------------------

def attention_model(rng, q_shape, k_shape, v_shape, mask=None, **attrs):
    feeds = {"q": floats(rng, *q_shape), "k": floats(rng, *k_shape), "v": floats(rng, *v_shape)}
    names = ["q", "k", "v"]
    if mask is not None:
        feeds["mask"] = mask
        names.append("mask")
    if len(q_shape) == 4:
        y_shape = q_shape[:3] + v_shape[3:]
    else:
        heads = attrs["q_num_heads"]
        y_shape = q_shape[:2] + (heads * v_shape[2] // attrs["kv_num_heads"],)
    return single_node("Attention", names, [("y", y_shape)], feeds, **attrs), feeds


@pytest.mark.parametrize("kv_heads", [4, 2, 1])
@pytest.mark.parametrize("is_causal", [0, 1])
def test_attention_4d(rng, kv_heads, is_causal):
    q_seq, kv_seq = (int(n) for n in rng.integers(1, 20, 2))
    model, feeds = attention_model(rng, (2, 4, q_seq, 8), (2, kv_heads, kv_seq, 8),
                                   (2, kv_heads, kv_seq, 5), is_causal=is_causal)
    check_claimed(model, feeds)


@pytest.mark.parametrize("mask_shape", [(9,), (6, 9), (3, 6, 9), (2, 1, 6, 9)])
@pytest.mark.parametrize("bool_mask", [False, True])
def test_attention_masks(rng, mask_shape, bool_mask):
    mask = rng.random(mask_shape) > 0.3 if bool_mask else floats(rng, *mask_shape)
    model, feeds = attention_model(rng, (2, 3, 6, 16), (2, 3, 9, 16), (2, 3, 9, 16), mask,
                                   is_causal=1, scale=0.3)
    check_claimed(model, feeds)


def test_attention_fully_masked_rows_give_zeros(rng):
    mask = np.ones((4, 5), bool)
    mask[2] = False
    model, feeds = attention_model(rng, (1, 2, 4, 8), (1, 2, 5, 8), (1, 2, 5, 8), mask)
    check_claimed(model, feeds)


def test_attention_3d_grouped_heads(rng):
    model, feeds = attention_model(rng, (2, 7, 48), (2, 5, 16), (2, 5, 24), q_num_heads=6,
                                   kv_num_heads=2, is_causal=1)
    check_claimed(model, feeds)


def test_attention_long_keys_and_heads_cross_k_blocks(rng):
    model, feeds = attention_model(rng, (1, 2, 20, 300), (1, 2, 290, 300), (1, 2, 290, 40))
    check_claimed(model, feeds, rtol=1e-4)


def attention_cache_model(rng, mode=None, nonpad=None, opset=23, three_d=False, **attrs):
    """An Attention node with a key/value cache (present outputs too) or, given ``nonpad``
    lengths, an external one; with ``mode``, also its qk_matmul_output."""
    batch, q_heads, kv_heads, q_seq, kv_seq, past, size = 2, 4, 2, 5, 3, 4, 8
    if three_d:
        attrs.update(q_num_heads=q_heads, kv_num_heads=kv_heads)
        feeds = {"q": floats(rng, batch, q_seq, q_heads * size),
                 "k": floats(rng, batch, kv_seq, kv_heads * size),
                 "v": floats(rng, batch, kv_seq, kv_heads * size)}
        y_shape = (batch, q_seq, q_heads * size)
    else:
        feeds = {"q": floats(rng, batch, q_heads, q_seq, size),
                 "k": floats(rng, batch, kv_heads, kv_seq, size),
                 "v": floats(rng, batch, kv_heads, kv_seq, size)}
        y_shape = (batch, q_heads, q_seq, size)
    names, outputs = ["q", "k", "v", "mask"], [("y", y_shape)]
    if nonpad is None:
        total = past + kv_seq
        feeds.update(past_key=floats(rng, batch, kv_heads, past, size),
                     past_value=floats(rng, batch, kv_heads, past, size))
        names += ["past_key", "past_value"]
        outputs += [("present_key", (batch, kv_heads, total, size)),
                    ("present_value", (batch, kv_heads, total, size))]
    else:
        total = kv_seq
        feeds["nonpad"] = np.asarray(nonpad, np.int64)
        names += ["", "", "nonpad"]
        outputs += [("", None), ("", None)]
    feeds["mask"] = floats(rng, q_seq, total)
    if mode is not None:
        attrs["qk_matmul_output_mode"] = mode
        outputs.append(("qk", (batch, q_heads, q_seq, total)))
    node = helper.make_node("Attention", names, [name for name, _ in outputs], **attrs)
    model = make_model([node], [(n, helper.np_dtype_to_tensor_dtype(v.dtype), list(v.shape))
                                for n, v in feeds.items()],
                       [(n, FLOAT, list(shape)) for n, shape in outputs if n], opset=opset)
    return model, feeds


@pytest.mark.parametrize("mode", [None, 0, 1, 2, 3])
@pytest.mark.parametrize("three_d", [False, True])
def test_attention_with_cache_softcap_and_qk_output(rng, mode, three_d):
    model, feeds = attention_cache_model(rng, mode, three_d=three_d, is_causal=1, softcap=1.5)
    check_claimed(model, feeds)


def test_attention_external_cache_with_padding_and_windows(rng):
    model, feeds = attention_cache_model(rng, 3, nonpad=[2, 3], opset=25, is_causal=1,
                                         left_window_size=1, right_window_size=0)
    check_claimed(model, feeds)


def test_attention_shorter_mask_hides_the_keys_past_its_end(rng):
    q, k, v = floats(rng, 1, 2, 3, 8), floats(rng, 1, 2, 6, 8), floats(rng, 1, 2, 6, 8)
    feeds = {"q": q, "k": k, "v": v, "mask": rng.random((3, 4)) > 0.2}
    model = single_node("Attention", ["q", "k", "v", "mask"], [("y", (1, 2, 3, 8))], feeds,
                        opset=24)
    check_claimed(model, feeds)


def test_attention_float16_with_cache_mask_and_qk_output(rng):
    model, feeds = attention_cache_model(rng, 3, is_causal=1)
    half = {name: value.astype(np.float16) if value.dtype == np.float32 else value
            for name, value in feeds.items()}
    for value in list(model.graph.input) + list(model.graph.output):
        value.type.tensor_type.elem_type = TensorProto.FLOAT16
    check_claimed(model, half, rtol=2e-3)


def test_attention_declines_float64():
    node = helper.make_node("Attention", ["q", "k", "v"], ["y"])
    model = make_model([node], [(n, TensorProto.DOUBLE, [1, 2, 3, 8]) for n in "qkv"],
                       [("y", TensorProto.DOUBLE, [1, 2, 3, 8])], opset=23)
    assert "float32 and float16" in decline_reasons(model)


# -- RotaryEmbedding ------------------------------------------------------------------------

@pytest.mark.parametrize("four_d", [True, False])
@pytest.mark.parametrize("interleaved", [0, 1])
@pytest.mark.parametrize("rotary_dim", [0, 4])
@pytest.mark.parametrize("with_ids", [False, True])
def test_rotary_embedding(rng, four_d, interleaved, rotary_dim, with_ids):
    batch, seq, heads, size = 2, int(rng.integers(1, 9)), 3, 10
    half = (rotary_dim or size) // 2
    x_shape = (batch, heads, seq, size) if four_d else (batch, seq, heads * size)
    cache_shape = (12, half) if with_ids else (batch, seq, half)
    feeds = {"x": floats(rng, *x_shape), "cos": floats(rng, *cache_shape),
             "sin": floats(rng, *cache_shape)}
    if with_ids:
        feeds["ids"] = rng.integers(0, 12, (batch, seq)).astype(np.int64)
    attrs = {"interleaved": interleaved, "rotary_embedding_dim": rotary_dim}
    if not four_d:
        attrs["num_heads"] = heads
    model = single_node("RotaryEmbedding", list(feeds), [("y", x_shape)], feeds, **attrs)
    check_claimed(model, feeds)


def test_rotary_embedding_fault_on_position_ids_outside_the_caches(rng):
    feeds = {"x": floats(rng, 1, 2, 3, 8), "cos": floats(rng, 4, 4), "sin": floats(rng, 4, 4),
             "ids": np.array([[0, 1, 4]], np.int64)}
    model = single_node("RotaryEmbedding", list(feeds), [("y", (1, 2, 3, 8))], feeds)
    with pytest.warns(UserWarning, match="cpu_llvm.*position_ids must lie in \\[0, 4\\)"), \
            pytest.raises(ByocError, match="position_ids must lie in \\[0, 4\\)"):
        compiled(model, 1).run(feeds)
