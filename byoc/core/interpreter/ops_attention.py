"""Transformer attention: Attention (opsets 23 to 25) and RotaryEmbedding."""

from __future__ import annotations

import numpy as np

from byoc.core.interpreter.base import OpImpl, accumulation_dtype, register

QK_RAW, QK_SOFTCAPPED, QK_BIASED, QK_SOFTMAX = range(4)


def to_heads(x: np.ndarray, num_heads: int) -> np.ndarray:
    """A 3-D ``(batch, seq, heads * size)`` tensor as 4-D ``(batch, heads, seq, size)``."""
    batch, seq, hidden = x.shape
    return x.reshape(batch, seq, num_heads, hidden // num_heads).transpose(0, 2, 1, 3)


def from_heads(x: np.ndarray) -> np.ndarray:
    """The inverse of :func:`to_heads`."""
    batch, heads, seq, size = x.shape
    return x.transpose(0, 2, 1, 3).reshape(batch, seq, heads * size)


class AttentionShapes:
    """The dims of an Attention node, checked against each other from the input shapes.

    ``q``, ``k``, ``v`` are 4-D ``(batch, heads, seq, head_size)`` shapes, after splitting
    3-D inputs into heads.
    """

    def __init__(self, q, k, v, attn_mask, past_key, past_value, nonpad_kv_seqlen, opset,
                 q_num_heads, kv_num_heads):
        if not q.ndim == k.ndim == v.ndim or q.ndim not in (3, 4):
            raise ValueError(f"Attention takes Q, K and V all 3-D or all 4-D, got shapes "
                             f"{list(q.shape)}, {list(k.shape)}, {list(v.shape)}")
        self.three_d = q.ndim == 3
        if self.three_d:
            if q_num_heads is None or kv_num_heads is None:
                raise ValueError("Attention with 3-D Q, K, V needs the q_num_heads and "
                                 "kv_num_heads attributes")
            for name, x, heads in (("Q", q, q_num_heads), ("K", k, kv_num_heads),
                                   ("V", v, kv_num_heads)):
                if heads <= 0 or x.shape[2] % heads:
                    raise ValueError(f"Attention {name} hidden size {x.shape[2]} is not a "
                                     f"multiple of its {heads} heads")
            q_shape = (q.shape[0], q_num_heads, q.shape[1], q.shape[2] // q_num_heads)
            k_shape = (k.shape[0], kv_num_heads, k.shape[1], k.shape[2] // kv_num_heads)
            v_shape = (v.shape[0], kv_num_heads, v.shape[1], v.shape[2] // kv_num_heads)
        else:
            if opset >= 25 and (q_num_heads is not None or kv_num_heads is not None):
                raise ValueError("Attention-25 with 4-D inputs takes the head counts from the "
                                 "shapes; drop the q_num_heads and kv_num_heads attributes")
            q_shape, k_shape, v_shape = q.shape, k.shape, v.shape
        self.batch, self.q_heads, self.q_seq, self.head_size = q_shape
        self.kv_heads, kv_seq = k_shape[1], k_shape[2]
        self.v_head_size = v_shape[3]
        if k_shape[0] != self.batch or v_shape[0] != self.batch:
            raise ValueError(f"Attention batch sizes differ: Q {q_shape[0]}, K {k_shape[0]}, "
                             f"V {v_shape[0]}")
        if k_shape[3] != self.head_size:
            raise ValueError(f"Attention Q and K head sizes differ ({self.head_size} and "
                             f"{k_shape[3]})")
        if v_shape[1] != self.kv_heads or v_shape[2] != kv_seq:
            raise ValueError(f"Attention K (heads, seq) = {k_shape[1:3]} and V "
                             f"{v_shape[1:3]} differ")
        if self.q_heads % self.kv_heads:
            raise ValueError(f"Attention needs q heads ({self.q_heads}) to be a multiple of kv "
                             f"heads ({self.kv_heads})")
        if (past_key is None) != (past_value is None):
            raise ValueError("Attention takes past_key and past_value together or neither")
        self.past_seq = 0
        if past_key is not None:
            if nonpad_kv_seqlen is not None:
                raise ValueError("Attention cannot take nonpad_kv_seqlen with past_key and "
                                 "past_value; use one way of caching keys")
            expected = {"past_key": (self.batch, self.kv_heads, None, self.head_size),
                        "past_value": (self.batch, self.kv_heads, None, self.v_head_size)}
            for name, past in (("past_key", past_key), ("past_value", past_value)):
                if past.ndim != 4 or any(e is not None and e != d
                                         for e, d in zip(expected[name], past.shape)):
                    raise ValueError(f"Attention {name} of shape {list(past.shape)} does not "
                                     f"fit (batch, kv_heads, past_seq, head_size) = "
                                     f"{list(expected[name])}")
            if past_key.shape[2] != past_value.shape[2]:
                raise ValueError("Attention past_key and past_value sequence lengths differ")
            self.past_seq = past_key.shape[2]
        self.total_seq = self.past_seq + kv_seq
        if nonpad_kv_seqlen is not None and nonpad_kv_seqlen.shape != (self.batch,):
            raise ValueError(f"Attention nonpad_kv_seqlen has shape "
                             f"{list(nonpad_kv_seqlen.shape)}, expected [{self.batch}]")
        if attn_mask is not None:
            full = (self.batch, self.q_heads, self.q_seq, attn_mask.shape[-1])
            if (attn_mask.ndim > 4 or attn_mask.shape[-1] > self.total_seq
                    or any(m not in (1, f) for m, f in zip(attn_mask.shape[::-1], full[::-1]))):
                raise ValueError(f"Attention attn_mask of shape {list(attn_mask.shape)} does not "
                                 f"broadcast to (batch, q_heads, q_seq, total_seq) = "
                                 f"{[self.batch, self.q_heads, self.q_seq, self.total_seq]}")


@register("Attention")
class Attention(OpImpl):
    """Scaled dot-product attention, ``softmax(Q K^T * scale + bias) V``, with grouped kv heads,
    a key/value cache, masks, softcap and the optional ``qk_matmul_output``.

    The bias adds up the float ``attn_mask`` (or ``-inf`` where a bool mask is False, and
    where a mask shorter than the keys ends), the causal frontier, the opset-25 sliding window
    and the ``nonpad_kv_seqlen`` padding. Causal and window positions are offset-aligned: query
    ``i`` sits at ``i + offset``, where ``offset`` is the past length of the cache, or
    ``nonpad_kv_seqlen - q_seq`` per batch. A query row whose every key is masked gives zeros.
    Scores, softmax and the value product run in float64 and round once, which is at least
    the precision any ``softmax_precision`` asks for.
    """

    def check(self, q, k, v, attn_mask=None, past_key=None, past_value=None,
              nonpad_kv_seqlen=None, q_num_heads=None, kv_num_heads=None,
              left_window_size=-1, right_window_size=-1, **attrs):
        self.validated(q, k, v, attn_mask, past_key, past_value, nonpad_kv_seqlen, q_num_heads,
                       kv_num_heads, left_window_size, right_window_size)

    def validated(self, q, k, v, attn_mask, past_key, past_value, nonpad_kv_seqlen,
                  q_num_heads, kv_num_heads, left_window_size,
                  right_window_size) -> AttentionShapes:
        """The node's dims, once every constraint on its inputs and attributes holds."""
        dims = AttentionShapes(q, k, v, attn_mask, past_key, past_value, nonpad_kv_seqlen,
                               self.opset, q_num_heads, kv_num_heads)
        if left_window_size < -1 or right_window_size < -1:
            raise ValueError("Attention window sizes must be -1 (unbounded) or nonnegative")
        if attn_mask is not None and attn_mask.dtype not in (np.bool_, q.dtype):
            raise ValueError(f"Attention attn_mask must be bool or {q.dtype} like Q, got "
                             f"{attn_mask.dtype}")
        return dims

    def run(self, q, k, v, attn_mask=None, past_key=None, past_value=None, nonpad_kv_seqlen=None,
            is_causal=0, q_num_heads=None, kv_num_heads=None, qk_matmul_output_mode=0,
            scale=None, softcap=0.0, softmax_precision=None, left_window_size=-1,
            right_window_size=-1):
        dims = self.validated(q, k, v, attn_mask, past_key, past_value, nonpad_kv_seqlen,
                              q_num_heads, kv_num_heads, left_window_size, right_window_size)
        if dims.three_d:
            q, k, v = to_heads(q, dims.q_heads), to_heads(k, dims.kv_heads), \
                to_heads(v, dims.kv_heads)
        present_key = k if past_key is None else np.concatenate([past_key, k], axis=2)
        present_value = v if past_value is None else np.concatenate([past_value, v], axis=2)

        dtype = accumulation_dtype(q.dtype)
        group = dims.q_heads // dims.kv_heads
        # Query head h reads kv head h // group.
        keys = np.repeat(present_key.astype(dtype), group, axis=1)
        values = np.repeat(present_value.astype(dtype), group, axis=1)
        if scale is None:
            scale = 1 / np.sqrt(dims.head_size)
        scores = np.matmul(q.astype(dtype), keys.swapaxes(-1, -2)) * scale
        raw_scores = scores
        if softcap > 0:
            scores = softcap * np.tanh(scores / softcap)
        bias = self.bias(dims, attn_mask, nonpad_kv_seqlen, is_causal, left_window_size,
                         right_window_size, dtype)
        biased = scores + bias
        probabilities = masked_softmax(biased, fully_masked=np.all(bias == -np.inf, axis=-1,
                                                                   keepdims=True))
        y = np.matmul(probabilities, values).astype(q.dtype)
        if dims.three_d:
            y = from_heads(y)
        qk_output = {QK_RAW: raw_scores, QK_SOFTCAPPED: scores, QK_BIASED: biased,
                     QK_SOFTMAX: probabilities}.get(qk_matmul_output_mode)
        if qk_output is None:
            raise ValueError(f"Attention qk_matmul_output_mode {qk_matmul_output_mode} is not "
                             f"one of 0, 1, 2, 3")
        qk_output = np.broadcast_to(qk_output, (dims.batch, dims.q_heads, dims.q_seq,
                                                dims.total_seq))
        return y, present_key, present_value, qk_output.astype(q.dtype)

    def bias(self, dims: AttentionShapes, attn_mask, nonpad_kv_seqlen, is_causal,
             left_window_size, right_window_size, dtype) -> np.ndarray:
        """The additive bias of the scores, broadcastable to (batch, q_heads, q_seq,
        total_seq): 0 where a key is attended, ``-inf`` where it is masked out."""
        bias = np.zeros((1, 1, dims.q_seq, dims.total_seq), dtype)
        if attn_mask is not None:
            if attn_mask.dtype == np.bool_:
                mask = np.where(attn_mask, 0.0, -np.inf).astype(dtype)
            else:
                mask = attn_mask.astype(dtype)
            short_by = dims.total_seq - mask.shape[-1]
            mask = np.pad(mask, [(0, 0)] * (mask.ndim - 1) + [(0, short_by)],
                          constant_values=-np.inf)
            bias = bias + mask
        if is_causal or left_window_size >= 0 or right_window_size >= 0 \
                or nonpad_kv_seqlen is not None:
            if nonpad_kv_seqlen is not None:
                offset = nonpad_kv_seqlen.astype(np.int64).reshape(-1, 1, 1, 1) - dims.q_seq
            else:
                offset = np.full((1, 1, 1, 1), dims.past_seq, np.int64)
            query = np.arange(dims.q_seq).reshape(-1, 1) + offset
            key = np.arange(dims.total_seq)
            # How far each key lies behind its query.
            behind = query - key
            allowed = np.ones(behind.shape, bool)
            if is_causal:
                allowed &= behind >= 0
            if left_window_size >= 0:
                allowed &= behind <= left_window_size
            if right_window_size >= 0:
                allowed &= -behind <= right_window_size
            if nonpad_kv_seqlen is not None:
                allowed &= key < nonpad_kv_seqlen.reshape(-1, 1, 1, 1)
            bias = bias + np.where(allowed, 0.0, -np.inf).astype(dtype)
        return bias


def masked_softmax(scores: np.ndarray, fully_masked: np.ndarray) -> np.ndarray:
    """Softmax over the last axis; rows marked ``fully_masked`` (no key attended) are zero,
    not the NaN that exp(-inf - -inf) would give."""
    row_max = np.where(fully_masked, 0.0, scores.max(axis=-1, keepdims=True))
    with np.errstate(invalid="ignore"):
        exp = np.exp(scores - row_max)
    total = exp.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        probabilities = exp / total
    return np.where(fully_masked, 0.0, probabilities)


def rotary_layout(x, cos_cache, sin_cache, position_ids, rotary_embedding_dim, num_heads):
    """The input as a (batch, seq, heads, head_size) shape, and the rotated width."""
    if x.ndim == 4:
        batch, heads, seq, head_size = x.shape
    elif x.ndim == 3:
        batch, seq, hidden = x.shape
        if num_heads <= 0 or hidden % num_heads:
            raise ValueError(f"RotaryEmbedding with 3-D input of hidden size {hidden} needs "
                             f"a num_heads attribute that divides it (got {num_heads})")
        heads, head_size = num_heads, hidden // num_heads
    else:
        raise ValueError(f"RotaryEmbedding takes a 3-D or 4-D input, got shape "
                         f"{list(x.shape)}")
    rotated = rotary_embedding_dim or head_size
    if rotated > head_size or rotated % 2:
        raise ValueError(f"RotaryEmbedding rotary_embedding_dim {rotated} must be even and "
                         f"at most the head size {head_size}")
    if position_ids is None:
        expected = (batch, seq, rotated // 2)
    else:
        if position_ids.shape != (batch, seq):
            raise ValueError(f"RotaryEmbedding position_ids has shape "
                             f"{list(position_ids.shape)}, expected [{batch}, {seq}]")
        expected = (None, rotated // 2)
    for name, cache in (("cos_cache", cos_cache), ("sin_cache", sin_cache)):
        if cache.ndim != len(expected) or any(e is not None and e != d
                                              for e, d in zip(expected, cache.shape)):
            shape = ["max_position" if e is None else e for e in expected]
            raise ValueError(f"RotaryEmbedding {name} has shape {list(cache.shape)}, "
                             f"expected {shape}")
    return (batch, seq, heads, head_size), rotated


@register("RotaryEmbedding")
class RotaryEmbedding(OpImpl):
    """RotaryEmbedding: rotate pairs of features of each head by position-dependent angles.

    Pairs are the two halves of the first ``rotary_embedding_dim`` features, or neighbours
    with ``interleaved``; the remaining features pass through. The caches are indexed by
    ``position_ids`` when given, else they are already ``(batch, seq, rotary_dim / 2)``.
    """

    def check(self, x, cos_cache, sin_cache, position_ids=None, interleaved=0,
              rotary_embedding_dim=0, num_heads=0):
        rotary_layout(x, cos_cache, sin_cache, position_ids, rotary_embedding_dim, num_heads)

    def run(self, x, cos_cache, sin_cache, position_ids=None, interleaved=0,
            rotary_embedding_dim=0, num_heads=0):
        shape, rotated = rotary_layout(x, cos_cache, sin_cache, position_ids,
                                       rotary_embedding_dim, num_heads)
        if position_ids is not None:
            if position_ids.size and (position_ids.min() < 0
                                      or position_ids.max() >= cos_cache.shape[0]):
                raise ValueError(f"RotaryEmbedding position_ids must lie in [0, "
                                 f"{cos_cache.shape[0]}) (the caches' rows)")
            cos_cache, sin_cache = cos_cache[position_ids], sin_cache[position_ids]
        dtype = np.dtype(np.float64)
        features = (x.transpose(0, 2, 1, 3) if x.ndim == 4 else x.reshape(shape)).astype(dtype)
        # Caches are (batch, seq, rotated / 2); one angle serves every head.
        cos = cos_cache.astype(dtype)[:, :, np.newaxis, :]
        sin = sin_cache.astype(dtype)[:, :, np.newaxis, :]
        head = features[..., :rotated]
        if interleaved:
            first, second = head[..., 0::2], head[..., 1::2]
        else:
            first, second = head[..., :rotated // 2], head[..., rotated // 2:]
        real = first * cos - second * sin
        imaginary = first * sin + second * cos
        if interleaved:
            rotated_head = np.stack([real, imaginary], axis=-1).reshape(head.shape)
        else:
            rotated_head = np.concatenate([real, imaginary], axis=-1)
        y = np.concatenate([rotated_head, features[..., rotated:]], axis=-1).astype(x.dtype)
        return y.transpose(0, 2, 1, 3) if x.ndim == 4 else y.reshape(x.shape)
