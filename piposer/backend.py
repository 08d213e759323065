"""One small interface over the two TFLite runtimes: ai-edge-litert (Python >= 3.12) and tflite-runtime."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import PiposerError
from .modelfile import check_file

RUNTIMES = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter")


def interpreter_class():
    """Return the Interpreter class of whichever runtime is installed, preferring ai-edge-litert."""
    for module in RUNTIMES:
        try:
            return importlib.import_module(module).Interpreter
        except ImportError:
            continue
    raise PiposerError(
        "no TFLite runtime installed: install 'ai-edge-litert' (Python >= 3.12) or 'tflite-runtime' (Python 3.11)"
    )


@dataclass(frozen=True)
class Tensor:
    """What a model says about one input or output tensor."""

    name: str
    index: int
    shape: tuple[int, ...]
    dtype: type
    scale: float
    zero_point: int

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0


class Model:
    """A loaded TFLite model: named tensors, input resizing, invoke, dequantized outputs."""

    def __init__(self, path: str | Path, num_threads: int = 2):
        self.path = Path(path)
        check_file(self.path)  # the runtimes trust the flatbuffer: a corrupt file would crash the process
        try:
            self._interp = interpreter_class()(model_path=str(self.path), num_threads=num_threads)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise PiposerError(f"cannot load model {self.path}: {exc}") from None
        self._refresh()

    def _refresh(self) -> None:
        self.inputs = [self._tensor(d) for d in self._interp.get_input_details()]
        self.outputs = [self._tensor(d) for d in self._interp.get_output_details()]

    @staticmethod
    def _tensor(detail: dict) -> Tensor:
        scale, zero = detail["quantization"]
        return Tensor(detail["name"], detail["index"], tuple(int(s) for s in detail["shape"]),
                      detail["dtype"], float(scale), int(zero))

    @property
    def input(self) -> Tensor:
        return self.inputs[0]

    def resize_input(self, shape: tuple[int, ...]) -> None:
        """Resize the first input (fully convolutional models only) and re-allocate."""
        if tuple(shape) == self.input.shape:
            return
        try:
            self._interp.resize_tensor_input(self.input.index, list(shape), strict=False)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise PiposerError(f"model {self.path.name} cannot take input shape {list(shape)}: {exc}") from None
        self._refresh()

    def run(self, *arrays: np.ndarray) -> None:
        """Set the inputs in order and invoke."""
        for tensor, array in zip(self.inputs, arrays):
            self._interp.set_tensor(tensor.index, array)
        self._interp.invoke()

    def input_array(self) -> np.ndarray:
        """A writable view of the first input's buffer, batch dim included: fill it in place of an array to
        `run`, drop it, then `invoke` (the runtime refuses to invoke while a view is held)."""
        return self._interp.tensor(self.input.index)()

    def invoke(self) -> None:
        """Invoke on the inputs as they are (see `input_array`)."""
        self._interp.invoke()

    def output(self, tensor: Tensor) -> np.ndarray:
        """The output's values as float32 (dequantized with its scale and zero point), batch dim dropped."""
        raw = self._interp.get_tensor(tensor.index)[0]
        if tensor.quantized:
            return (raw.astype(np.float32) - tensor.zero_point) * np.float32(tensor.scale)
        return raw if raw.dtype == np.float32 else raw.astype(np.float32)
