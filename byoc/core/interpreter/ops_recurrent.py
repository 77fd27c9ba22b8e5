"""Recurrent layers: RNN, GRU and LSTM, in every direction and layout, with sequence_lens,
initial states, peepholes, clip and the ONNX activation functions."""

from __future__ import annotations

from abc import abstractmethod
from typing import Callable

import numpy as np

from byoc.core.interpreter.base import OpImpl, accumulation_dtype, register

Activation = Callable[[np.ndarray], np.ndarray]


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _softplus(x):
    return np.logaddexp(0, x)


# Each activation ONNX allows in a recurrent layer: its defaults for the alpha and beta it
# takes (None when it takes none), and its formula.
ACTIVATIONS: dict[str, tuple[float | None, float | None, Callable[..., np.ndarray]]] = {
    "relu": (None, None, lambda x, a, b: np.maximum(x, 0)),
    "tanh": (None, None, lambda x, a, b: np.tanh(x)),
    "sigmoid": (None, None, lambda x, a, b: _sigmoid(x)),
    "softsign": (None, None, lambda x, a, b: x / (1 + np.abs(x))),
    "softplus": (None, None, lambda x, a, b: _softplus(x)),
    "affine": (1.0, 0.0, lambda x, a, b: a * x + b),
    "leakyrelu": (0.01, None, lambda x, a, b: np.where(x >= 0, x, a * x)),
    "thresholdedrelu": (1.0, None, lambda x, a, b: np.where(x > a, x, 0)),
    "scaledtanh": (1.0, 1.0, lambda x, a, b: a * np.tanh(b * x)),
    "hardsigmoid": (0.2, 0.5, lambda x, a, b: np.clip(a * x + b, 0, 1)),
    "elu": (1.0, None, lambda x, a, b: np.where(x >= 0, x, a * np.expm1(x))),
}


def activation_parameters(op: str, names: list[str], alphas: list[float],
                          betas: list[float]) -> list[tuple[str, float | None, float | None]]:
    """(name in lower case, alpha, beta) of each activation function a node names.

    As in onnxruntime, ``activation_alpha`` and ``activation_beta`` are consumed in the order
    of the functions, each value by the next function that takes that parameter; a function
    left without one uses its ONNX default.
    """
    alpha_values, beta_values = iter(alphas), iter(betas)
    parameters = []
    for name in names:
        entry = ACTIVATIONS.get(name.lower())
        if entry is None:
            raise ValueError(f"{op} activation {name!r} is not one ONNX defines; use one of "
                             f"{', '.join(sorted(ACTIVATIONS))}")
        default_alpha, default_beta, _ = entry
        alpha = next(alpha_values, default_alpha) if default_alpha is not None else None
        beta = next(beta_values, default_beta) if default_beta is not None else None
        parameters.append((name.lower(), alpha, beta))
    return parameters


def activation_functions(op: str, names: list[str], alphas: list[float],
                         betas: list[float]) -> list[Activation]:
    """The activation functions a node names, bound to their alpha and beta."""
    return [lambda x, f=ACTIVATIONS[name][2], a=alpha, b=beta: f(x, a, b)
            for name, alpha, beta in activation_parameters(op, names, alphas, betas)]


class RecurrentLayer(OpImpl):
    """What RNN, GRU and LSTM share: shapes and layout, directions, sequence lengths, initial
    states and the time loop. Subclasses give their gate count and one time step.

    Every direction runs the same step over the time steps of each batch entry's own
    sequence length (reverse from that length down); Y is zero past that length, and Y_h
    (and Y_c) hold the state after the entry's last step.
    """

    gates: int
    default_activations: tuple[str, ...]
    states: int = 1

    def check(self, x, w, r, b=None, sequence_lens=None, initial_h=None, initial_c=None,
              p=None, *, direction="forward", hidden_size=None, layout=0, activations=None,
              activation_alpha=None, activation_beta=None, **attrs):
        self.dims(x, w, r, b, sequence_lens, initial_h, initial_c, p, direction, hidden_size,
                  layout, activations)

    def dims(self, x, w, r, b, sequence_lens, initial_h, initial_c, p, direction, hidden_size,
             layout, activations) -> tuple[int, int, int, int]:
        """(seq, batch, input_size, hidden), checked against every input's shape."""
        op = self.node.op_type
        directions = {"forward": 1, "reverse": 1, "bidirectional": 2}.get(direction)
        if directions is None:
            raise ValueError(f"{op} direction {direction!r} must be forward, reverse or "
                             f"bidirectional")
        if x.ndim != 3:
            raise ValueError(f"{op} X must be 3-D, got shape {list(x.shape)}")
        seq, batch, input_size = (x.shape[1], x.shape[0], x.shape[2]) if layout else x.shape
        hidden = w.shape[1] // self.gates if w.ndim == 3 else 0
        if hidden_size is not None and hidden_size != hidden:
            raise ValueError(f"{op} hidden_size {hidden_size} does not match W's shape "
                             f"{list(w.shape)} ({self.gates} gates)")
        expected = {"W": (w, (directions, self.gates * hidden, input_size)),
                    "R": (r, (directions, self.gates * hidden, hidden)),
                    "B": (b, (directions, 2 * self.gates * hidden)),
                    "sequence_lens": (sequence_lens, (batch,)),
                    "P": (p, (directions, 3 * hidden))}
        state_shape = (batch, directions, hidden) if layout else (directions, batch, hidden)
        expected["initial_h"] = (initial_h, state_shape)
        expected["initial_c"] = (initial_c, state_shape)
        for name, (value, shape) in expected.items():
            if value is not None and value.shape != shape:
                raise ValueError(f"{op} {name} has shape {list(value.shape)}, expected "
                                 f"{list(shape)} (direction {direction}, hidden {hidden}, "
                                 f"layout {layout})")
        names = activations or list(self.default_activations) * directions
        if len(names) != len(self.default_activations) * directions:
            raise ValueError(f"{op} takes {len(self.default_activations)} activations per "
                             f"direction ({directions} directions), got {len(names)}")
        return seq, batch, input_size, hidden

    def run(self, x, w, r, b=None, sequence_lens=None, initial_h=None, initial_c=None, p=None,
            *, direction="forward", hidden_size=None, layout=0, activations=None,
            activation_alpha=None, activation_beta=None, clip=None, **variant):
        seq, batch, _, hidden = self.dims(x, w, r, b, sequence_lens, initial_h, initial_c, p,
                                          direction, hidden_size, layout, activations)
        op = self.node.op_type
        directions = 2 if direction == "bidirectional" else 1
        functions = activation_functions(
            op, activations or list(self.default_activations) * directions,
            list(activation_alpha or []), list(activation_beta or []))
        per_direction = len(self.default_activations)
        dtype = accumulation_dtype(x.dtype)
        if layout:
            x = x.swapaxes(0, 1)
            initial_h = None if initial_h is None else initial_h.swapaxes(0, 1)
            initial_c = None if initial_c is None else initial_c.swapaxes(0, 1)
        if sequence_lens is None:
            lengths = np.full(batch, seq, np.int64)
        else:
            lengths = sequence_lens.astype(np.int64)
            if np.any((lengths < 0) | (lengths > seq)):
                raise ValueError(f"{op} sequence_lens must lie in [0, {seq}], got "
                                 f"{lengths.tolist()}")
        xs = x.astype(dtype)
        if b is None:
            b = np.zeros((directions, 2 * self.gates * hidden), dtype)
        ys, finals = [], []
        for d in range(directions):
            h0 = np.zeros((batch, hidden), dtype) if initial_h is None else initial_h[d]
            c0 = np.zeros((batch, hidden), dtype) if initial_c is None else initial_c[d]
            weights = (w[d].astype(dtype), r[d].astype(dtype),
                       b[d, :self.gates * hidden].astype(dtype),
                       b[d, self.gates * hidden:].astype(dtype),
                       None if p is None else p[d].astype(dtype))
            acts = functions[d * per_direction:(d + 1) * per_direction]
            reverse = direction == "reverse" or d == 1
            y, state = self.run_direction(xs, lengths, reverse, weights, acts, clip,
                                          [h0.astype(dtype), c0.astype(dtype)][:self.states],
                                          variant)
            ys.append(y)
            finals.append(state)
        y = np.stack(ys, axis=1)                       # (seq, directions, batch, hidden)
        finals = [np.stack([f[i] for f in finals]) for i in range(self.states)]
        if layout:
            y = y.transpose(2, 0, 1, 3)
            finals = [f.swapaxes(0, 1) for f in finals]
        return tuple(v.astype(x.dtype) for v in [y] + finals)

    def run_direction(self, xs, lengths, reverse, weights, activations, clip, state, variant):
        """Run one direction. Returns its Y (seq, batch, hidden) and its final states."""
        seq = xs.shape[0]
        w, r, wb, rb, p = weights
        # The input projections of all time steps in one product.
        projected = xs @ w.T + wb
        y = np.zeros((seq, xs.shape[1], r.shape[1]), xs.dtype)
        for t in range(seq):
            # Each entry steps through its own sequence: t counts down from its length - 1
            # when reversed; entries whose length t has passed keep their state.
            steps = lengths - 1 - t if reverse else np.full_like(lengths, t)
            active = (t < lengths)[:, np.newaxis]
            index = np.clip(steps, 0, seq - 1)
            gates_x = projected[index, np.arange(xs.shape[1])]
            new_state = self.step(gates_x, state, r, rb, p, activations, clip, variant)
            state = [np.where(active, new, old) for new, old in zip(new_state, state)]
            y[index, np.arange(xs.shape[1])] = np.where(active, state[0],
                                                        y[index, np.arange(xs.shape[1])])
        return y, state

    @abstractmethod
    def step(self, gates_x, state, r, rb, p, activations, clip, variant) -> list[np.ndarray]:
        """The states after one time step, given the input projection ``gates_x`` (with the
        input bias) of this step."""


def clipped(x: np.ndarray, clip: float | None) -> np.ndarray:
    """Gate pre-activations bounded to [-clip, clip] when the node sets ``clip``."""
    return x if clip is None else np.clip(x, -clip, clip)


@register("RNN")
class RNN(RecurrentLayer):
    """RNN: ``H_t = f(X_t W^T + H_{t-1} R^T + Wb + Rb)``."""

    gates = 1
    default_activations = ("Tanh",)

    def step(self, gates_x, state, r, rb, p, activations, clip, variant):
        (f,) = activations
        return [f(clipped(gates_x + state[0] @ r.T + rb, clip))]


@register("GRU")
class GRU(RecurrentLayer):
    """GRU with update, reset and hidden gates (z, r, h). ``linear_before_reset`` applies
    the reset gate after the recurrent product of the hidden gate instead of before it."""

    gates = 3
    default_activations = ("Sigmoid", "Tanh")

    def step(self, gates_x, state, r, rb, p, activations, clip, variant):
        f, g = activations
        (h,) = state
        hidden = h.shape[1]
        # z and r take the recurrent product of the whole previous state.
        recurrent_zr = h @ r[:2 * hidden].T + rb[:2 * hidden]
        z = f(clipped(gates_x[:, :hidden] + recurrent_zr[:, :hidden], clip))
        reset = f(clipped(gates_x[:, hidden:2 * hidden] + recurrent_zr[:, hidden:], clip))
        r_h, rb_h = r[2 * hidden:], rb[2 * hidden:]
        if variant.get("linear_before_reset", 0):
            recurrent_h = reset * (h @ r_h.T + rb_h)
        else:
            recurrent_h = (reset * h) @ r_h.T + rb_h
        candidate = g(clipped(gates_x[:, 2 * hidden:] + recurrent_h, clip))
        return [(1 - z) * candidate + z * h]


@register("LSTM")
class LSTM(RecurrentLayer):
    """LSTM with input, output, forget and cell gates (i, o, f, c), optional peepholes P
    (i, o, f) and ``input_forget``, which couples the forget gate to ``1 - i``."""

    gates = 4
    states = 2
    default_activations = ("Sigmoid", "Tanh", "Tanh")

    def step(self, gates_x, state, r, rb, p, activations, clip, variant):
        f, g, h_act = activations
        h, c = state
        hidden = h.shape[1]
        gates = gates_x + h @ r.T + rb
        i_in, o_in, f_in, c_in = (gates[:, k * hidden:(k + 1) * hidden] for k in range(4))
        p_i, p_o, p_f = (0, 0, 0) if p is None else (p[:hidden], p[hidden:2 * hidden],
                                                        p[2 * hidden:])
        input_gate = f(clipped(i_in + p_i * c, clip))
        if variant.get("input_forget", 0):
            forget_gate = 1 - input_gate
        else:
            forget_gate = f(clipped(f_in + p_f * c, clip))
        cell = forget_gate * c + input_gate * g(clipped(c_in, clip))
        output_gate = f(clipped(o_in + p_o * cell, clip))
        return [output_gate * h_act(cell), cell]
