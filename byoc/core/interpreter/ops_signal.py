"""Signal processing: the Hann, Hamming and Blackman windows, DFT, STFT and
MelWeightMatrix.

Complex tensors are real tensors with a last dim of 2 (real, imaginary); a last dim of 1
holds a real signal. Transforms run in numpy's FFT at the input's precision (complex64 for
float16 and float32, complex128 for float64), as onnxruntime's do; onnx's expected outputs
are numpy's single-precision FFT, down to its rounding noise around zero.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from byoc.core import dtypes
from byoc.core.interpreter.base import OpImpl, register

FLOAT = 1  # ONNX TensorProto.FLOAT, the default output_datatype


def _scalar(value: np.ndarray, op: str, name: str) -> None:
    if value.size != 1 or value.ndim > 1:
        raise ValueError(f"{op}'s {name} input must be a scalar; got shape {list(value.shape)}")


def _output_dtype(output_datatype: int, op: str) -> np.dtype:
    dtype = dtypes.to_numpy(output_datatype)
    if dtype is None:
        raise ValueError(f"{op}'s output_datatype {dtypes.onnx_type_name(output_datatype)} is not "
                         f"supported")
    return dtype


class CosineWindow(OpImpl):
    """A window of ``size`` points ``sum_i a_i * cos(2 pi i n / N)``: periodic (the default)
    with ``N = size``, as for spectral analysis, or symmetric with ``N = size - 1``. A
    non-float ``output_datatype`` truncates the values."""

    coefficients: ClassVar[tuple[float, ...]]

    def check(self, size, output_datatype=FLOAT, periodic=1):
        _scalar(size, self.op_type, "size")
        _output_dtype(output_datatype, self.op_type)

    def run(self, size, output_datatype=FLOAT, periodic=1):
        self.check(size, output_datatype)
        length = int(size.reshape(()))
        if length < 0:
            raise ValueError(f"{self.op_type}'s size must not be negative; got {length}")
        period = length if periodic else length - 1
        # A symmetric window of one point divides 0 by 0: NaN, by the ONNX formula and in
        # onnxruntime.
        with np.errstate(invalid="ignore"):
            phase = 2 * np.pi * np.arange(length) / np.float64(period)
        window = sum(a * np.cos(i * phase) for i, a in enumerate(self.coefficients))
        return np.asarray(window).astype(_output_dtype(output_datatype, self.op_type))


@register("HannWindow")
class HannWindow(CosineWindow):
    coefficients = (0.5, -0.5)


@register("HammingWindow")
class HammingWindow(CosineWindow):
    coefficients = (25 / 46, -21 / 46)


@register("BlackmanWindow")
class BlackmanWindow(CosineWindow):
    coefficients = (0.42, -0.5, 0.08)


def _complex(x: np.ndarray) -> np.ndarray:
    """The complex values of a [..., 1] (real) or [..., 2] (complex) tensor, at the
    precision of its type (complex64 for bfloat16 too)."""
    values = np.empty(x.shape[:-1], np.complex128 if x.dtype == np.float64 else np.complex64)
    parts = dtypes.widened(x)
    values.real = parts[..., 0]
    values.imag = parts[..., 1] if x.shape[-1] == 2 else 0
    return values


def _as_pairs(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return np.stack([values.real, values.imag], axis=-1).astype(dtype)


@register("DFT")
class DFT(OpImpl):
    """The discrete Fourier transform along one signal axis, or its inverse (divided by the
    length), zero-padding or cutting the signal to ``dft_length``.

    ``onesided`` forward keeps the bins up to ``dft_length // 2`` of a real signal (RFFT);
    ``onesided`` inverse takes those bins and returns the real signal (IRFFT, whose default
    length is ``2 * (bins - 1)``). The axis is an attribute (default 1) in opset 17 and an
    input (default -2) from opset 20; it may not be the last dim, which holds the parts.
    """

    def check(self, x, dft_length=None, axis_input=None, axis=None, inverse=0, onesided=0):
        if x.ndim < 2 or x.shape[-1] not in (1, 2):
            raise ValueError(f"DFT needs a last dim of 1 (real) or 2 (real, imaginary); got "
                             f"shape {list(x.shape)}")
        if dft_length is not None:
            _scalar(dft_length, "DFT", "dft_length")
        if axis_input is not None:
            _scalar(axis_input, "DFT", "axis")
        else:
            self.signal_axis(x, axis)
        if onesided and not inverse and x.shape[-1] == 2:
            raise ValueError("DFT with onesided=1 transforms a real signal (last dim 1); this "
                             "input is complex: set onesided=0")
        if onesided and inverse and x.shape[-1] == 1:
            raise ValueError("inverse DFT with onesided=1 takes the complex one-sided "
                             "spectrum (last dim 2); this input is real: set onesided=0")

    def signal_axis(self, x: np.ndarray, axis) -> int:
        if axis is None:
            axis = -2 if self.opset >= 20 else 1
        rank = x.ndim
        if not (-rank <= axis <= -2 or 0 <= axis <= rank - 2):
            raise ValueError(f"DFT axis {axis} is not a signal axis of an input of rank {rank} "
                             f"(the last dim holds the real and imaginary parts); use an axis "
                             f"in [{-rank}, -2] or [0, {rank - 2}]")
        return axis % rank

    def run(self, x, dft_length=None, axis_input=None, axis=None, inverse=0, onesided=0):
        self.check(x, dft_length, axis_input, axis, inverse, onesided)
        chosen = self.signal_axis(x, int(axis_input.reshape(())) if axis_input is not None
                                  else axis)
        signal = _complex(x)
        if dft_length is not None:
            length = int(dft_length.reshape(()))
        elif onesided and inverse:
            length = 2 * (x.shape[chosen] - 1)
        else:
            length = x.shape[chosen]
        if length < 1:
            raise ValueError(f"DFT length must be positive; got {length}")
        if onesided and inverse:
            return np.fft.irfft(signal, n=length, axis=chosen)[..., None].astype(x.dtype)
        if inverse:
            return _as_pairs(np.fft.ifft(signal, n=length, axis=chosen), x.dtype)
        spectrum = np.fft.fft(signal, n=length, axis=chosen)
        if onesided:
            spectrum = np.take(spectrum, np.arange(length // 2 + 1), axis=chosen)
        return _as_pairs(spectrum, x.dtype)


@register("STFT")
class STFT(OpImpl):
    """The DFTs of frames of ``frame_length`` samples, ``frame_step`` apart, of each signal
    of a [batch, length, 1 | 2] tensor, each frame weighted by ``window`` (all ones when
    omitted). The frame length defaults to the window's, else to the signal's length.
    ``onesided`` (the default) keeps the bins up to ``frame_length // 2``: for a real signal
    the others are their mirror images; for a complex one (which the spec says cannot be
    onesided) they are dropped all the same, as onnxruntime does. Output: [batch, frames,
    bins, 2]."""

    def check(self, signal, frame_step, window=None, frame_length=None, onesided=1):
        if signal.ndim != 3 or signal.shape[-1] not in (1, 2):
            raise ValueError(f"STFT needs a [batch, length, 1 | 2] signal; got shape "
                             f"{list(signal.shape)}")
        _scalar(frame_step, "STFT", "frame_step")
        if frame_length is not None:
            _scalar(frame_length, "STFT", "frame_length")
        if window is not None and window.ndim != 1:
            raise ValueError(f"STFT's window must be 1-D; got shape {list(window.shape)}")

    def run(self, signal, frame_step, window=None, frame_length=None, onesided=1):
        self.check(signal, frame_step, window, frame_length, onesided)
        step = int(frame_step.reshape(()))
        if frame_length is not None:
            length = int(frame_length.reshape(()))
            if window is not None and window.shape[0] != length:
                raise ValueError(f"STFT's window has {window.shape[0]} points, but "
                                 f"frame_length is {length}; they must agree")
        else:
            length = window.shape[0] if window is not None else signal.shape[1]
        if step < 1 or not 1 <= length <= signal.shape[1]:
            raise ValueError(f"STFT needs frame_step >= 1 and 1 <= frame_length <= the signal's "
                             f"{signal.shape[1]} samples; got frame_step {step}, frame_length "
                             f"{length}")
        samples = _complex(signal)
        frames = np.lib.stride_tricks.sliding_window_view(samples, length, axis=1)[:, ::step]
        if window is not None:
            frames = frames * window.astype(samples.real.dtype)
        spectrum = np.fft.fft(frames, axis=-1)
        if onesided:
            spectrum = spectrum[..., :length // 2 + 1]
        return _as_pairs(spectrum, signal.dtype)


@register("MelWeightMatrix")
class MelWeightMatrix(OpImpl):
    """The [dft_length // 2 + 1, num_mel_bins] matrix that maps a onesided spectrum to mel
    bands: triangular filters over the spectrum's bins, their corners evenly spaced on the
    mel scale (``2595 log10(1 + f / 700)``) between the edge frequencies.

    The corners follow the ONNX definition (shared by onnxruntime): the mel range is split in
    ``num_mel_bins + 2`` steps, and each corner frequency maps to bin
    ``floor((dft_length + 1) * f / sample_rate)``. A filter rises from 0 at its left corner
    to 1 at its centre and falls back towards its right corner.
    """

    def check(self, num_mel_bins, dft_length, sample_rate, lower_edge_hertz,
              upper_edge_hertz, output_datatype=FLOAT):
        for name, value in (("num_mel_bins", num_mel_bins), ("dft_length", dft_length),
                            ("sample_rate", sample_rate),
                            ("lower_edge_hertz", lower_edge_hertz),
                            ("upper_edge_hertz", upper_edge_hertz)):
            _scalar(value, "MelWeightMatrix", name)
        _output_dtype(output_datatype, "MelWeightMatrix")

    def run(self, num_mel_bins, dft_length, sample_rate, lower_edge_hertz, upper_edge_hertz,
            output_datatype=FLOAT):
        self.check(num_mel_bins, dft_length, sample_rate, lower_edge_hertz, upper_edge_hertz,
                   output_datatype)
        bands, length, rate = (int(v.reshape(())) for v in (num_mel_bins, dft_length,
                                                             sample_rate))
        low, high = (float(v.reshape(())) for v in (lower_edge_hertz, upper_edge_hertz))
        if bands < 0 or length < 1 or rate < 1:
            raise ValueError(f"MelWeightMatrix needs num_mel_bins >= 0, dft_length >= 1 and "
                             f"sample_rate >= 1; got {bands}, {length} and {rate}")
        low_mel, high_mel = (2595 * np.log10(1 + f / 700) for f in (low, high))
        mels = low_mel + np.arange(bands + 2) * (high_mel - low_mel) / (bands + 2)
        hertz = 700 * (10 ** (mels / 2595) - 1)
        corners = np.floor((length + 1) * hertz / rate).astype(np.int64)
        left, centre, right = corners[:-2], corners[1:-1], corners[2:]
        spectrum_bins = np.arange(length // 2 + 1)[:, None]
        rising = (spectrum_bins - left) / np.maximum(centre - left, 1)
        falling = (right - spectrum_bins) / np.maximum(right - centre, 1)
        weights = np.where((spectrum_bins >= left) & (spectrum_bins <= centre), rising, 0.0)
        weights = np.where((spectrum_bins == centre) & (centre == left), 1.0, weights)
        weights = np.where((spectrum_bins >= centre) & (spectrum_bins < right), falling, weights)
        return weights.astype(_output_dtype(output_datatype, "MelWeightMatrix"))
