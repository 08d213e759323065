"""A structural check of a .tflite file before any interpreter sees it.

The TFLite runtimes map the file and follow its flatbuffer offsets without verifying them, so a
truncated or corrupted model crashes the process (SIGSEGV/SIGBUS) instead of raising. This reader
walks the TFLite schema the way flatbuffers' own verifier does: the "TFL3" identifier, every table's
vtable and inline fields inside the file, every string, vector and sub-table reference inside the
file, and the buffers' data (inline or offset+size) inside the file; then the indices the interpreter
dereferences (tensor buffers, operator codes, tensor ids) and tensor sizes it would allocate. Any
failure is one ModelError naming the file. Standard library and numpy only.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ModelError

IDENTIFIER = b"TFL3"
MAX_TENSOR_BYTES = 1 << 30  # a tensor the interpreter would allocate beyond this is a corrupt shape on a Pi

# Field kinds: "b"/"h"/"i"/"q" (and unsigned) scalars by struct code, "str", ("vec", dtype), ("table", name),
# ("tables", name), ("union", {type: name}) whose type is the field before it. Field order is the schema's.
_SUBVECTORS = {1: "Int32Vector", 2: "Uint16Vector", 3: "Uint8Vector"}
SCHEMA: dict[str, tuple] = {
    "Model": ("I", ("tables", "OperatorCode"), ("tables", "SubGraph"), "str", ("tables", "Buffer"),
              ("vec", "<i4"), ("tables", "Metadata"), ("tables", "SignatureDef")),
    "OperatorCode": ("b", "str", "i", "i"),
    "SubGraph": (("tables", "Tensor"), ("vec", "<i4"), ("vec", "<i4"), ("tables", "Operator"), "str"),
    "Tensor": (("vec", "<i4"), "b", "I", "str", ("table", "QuantizationParameters"), "B",
               ("table", "SparsityParameters"), ("vec", "<i4"), "B", ("tables", "VariantSubType")),
    "QuantizationParameters": (("vec", "<f4"), ("vec", "<f4"), ("vec", "<f4"), ("vec", "<i8"), "B",
                               ("union", {1: "CustomQuantization"}), "i"),
    "CustomQuantization": (("vec", "u1"),),
    "SparsityParameters": (("vec", "<i4"), ("vec", "<i4"), ("tables", "DimensionMetadata")),
    "DimensionMetadata": ("b", "i", "B", ("union", _SUBVECTORS), "B", ("union", _SUBVECTORS)),
    "Int32Vector": (("vec", "<i4"),),
    "Uint16Vector": (("vec", "<u2"),),
    "Uint8Vector": (("vec", "u1"),),
    "VariantSubType": (("vec", "<i4"), "b", "B"),
    # builtin_options: only the option tables holding references are named; the rest are checked as
    # tables of scalars (vtable and inline bytes inside the file).
    "Operator": ("I", ("vec", "<i4"), ("vec", "<i4"), "B", ("union", {17: "ReshapeOptions", 30: "SqueezeOptions"}),
                 ("vec", "u1"), "b", ("vec", "u1"), ("vec", "<i4"), "Q", "Q", "B", ("union", {})),
    "ReshapeOptions": (("vec", "<i4"),),
    "SqueezeOptions": (("vec", "<i4"),),
    "Buffer": (("vec", "u1"), "Q", "Q"),
    "Metadata": ("str", "I"),
    "SignatureDef": (("tables", "TensorMap"), ("tables", "TensorMap"), "str", "str", "I"),
    "TensorMap": ("str", "I"),
}

# TensorType -> bytes per element (strings, resources and variants have no fixed size)
ITEMSIZE = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8, 15: 4, 16: 2}


class Corrupt(Exception):
    """Raised inside the walk; `check_file` turns it into a ModelError naming the file."""


@dataclass
class Table:
    """One verified table: its position, the field offsets from its vtable, and the verified sub-objects."""

    data: bytes
    pos: int
    fields: tuple[int, ...]
    refs: dict

    def scalar(self, index: int, code: str, default=0):
        offset = self.fields[index] if index < len(self.fields) else 0
        return struct.unpack_from("<" + code, self.data, self.pos + offset)[0] if offset else default

    def ref(self, index: int, default=()):
        return self.refs.get(index, default)


class Walker:
    """Verifies every object reachable from the root against SCHEMA, bounds first, before anything is read."""

    def __init__(self, data: bytes):
        self.data = data
        self.size = len(data)

    def need(self, start: int, length: int, what: str) -> None:
        if start < 0 or length < 0 or start + length > self.size:
            raise Corrupt(f"{what} at byte {start} (+{length}) lies outside the file")

    def u32(self, pos: int, what: str) -> int:
        self.need(pos, 4, what)
        return struct.unpack_from("<I", self.data, pos)[0]

    def table(self, pos: int, name: str | None) -> Table:
        what = name or "options table"
        self.need(pos, 4, what)
        vtable = pos - struct.unpack_from("<i", self.data, pos)[0]
        self.need(vtable, 4, f"{what} vtable")
        vt_size, inline = struct.unpack_from("<HH", self.data, vtable)
        if vt_size < 4 or vt_size % 2 or inline < 4:
            raise Corrupt(f"{what} at byte {pos} has a malformed vtable")
        self.need(vtable, vt_size, f"{what} vtable")
        self.need(pos, inline, what)
        fields = struct.unpack_from(f"<{(vt_size - 4) // 2}H", self.data, vtable + 4)
        kinds = SCHEMA.get(name, ())
        table = Table(self.data, pos, fields, {})
        for index, offset in enumerate(fields):
            if not offset:
                continue
            kind = kinds[index] if index < len(kinds) else None
            width = struct.calcsize("<" + kind) if isinstance(kind, str) and kind != "str" else 4 if kind else 1
            if offset + width > inline:
                raise Corrupt(f"{what} at byte {pos}: field {index} lies outside the table")
            if kind is None or (isinstance(kind, str) and kind != "str"):
                continue
            table.refs[index] = self.follow(pos + offset, kind, table, index, what)
        return table

    def follow(self, field: int, kind, table: Table, index: int, what: str):
        target = field + self.u32(field, what)
        if kind == "str":
            length = self.u32(target, f"{what} string")
            self.need(target + 4, length + 1, f"{what} string")
            return self.data[target + 4:target + 4 + length]
        form, arg = kind
        if form == "table":
            return self.table(target, arg)
        if form == "union":
            return self.table(target, arg.get(table.scalar(index - 1, "B")))
        length = self.u32(target, f"{what} vector")
        width = np.dtype(arg).itemsize if form == "vec" else 4
        self.need(target + 4, length * width, f"{what} vector")
        if form == "vec":
            return np.frombuffer(self.data, arg, length, target + 4)
        return [self.table(target + 4 + 4 * i + self.u32(target + 4 + 4 * i, what), arg) for i in range(length)]


def check_bytes(data: bytes) -> Table:
    """The verified root Model table of a .tflite file's bytes; raises Corrupt naming the first problem."""
    if len(data) < 8 or data[4:8] != IDENTIFIER:
        raise Corrupt(f"not a TFLite flatbuffer (no {IDENTIFIER.decode()} identifier)")
    walker = Walker(data)
    model = walker.table(walker.u32(0, "root offset"), "Model")
    _check_indices(model, len(data))
    return model


def _check_indices(model: Table, size: int) -> None:
    """The references the interpreter follows without checking: buffers, operator codes, tensor ids, sizes."""
    buffers, codes, subgraphs = model.ref(4), model.ref(1), model.ref(2)
    if not subgraphs:
        raise Corrupt("the model has no subgraph")
    for buffer in buffers:
        offset, length = buffer.scalar(1, "Q"), buffer.scalar(2, "Q")
        if offset > 1 and offset + length > size:
            raise Corrupt(f"a buffer's data (byte {offset}, {length} bytes) lies outside the file")
    if any(m.scalar(1, "I") >= len(buffers) for m in model.ref(6)):
        raise Corrupt("metadata names a buffer that does not exist")
    for number, graph in enumerate(subgraphs):
        tensors = graph.ref(0)
        for tensor in tensors:
            _check_tensor(tensor, len(buffers), number)
        ids = [graph.ref(1, np.zeros(0, np.int32)), graph.ref(2, np.zeros(0, np.int32))]
        for op in graph.ref(3):
            if op.scalar(0, "I") >= len(codes):
                raise Corrupt(f"subgraph {number}: an operator names operator code {op.scalar(0, 'I')} of {len(codes)}")
            ids += [op.ref(i, np.zeros(0, np.int32)) for i in (1, 2, 8)]
        ids = np.concatenate(ids)
        if ids.size and (ids.min() < -1 or ids.max() >= len(tensors)):
            raise Corrupt(f"subgraph {number}: a tensor index is out of range (0..{len(tensors) - 1})")
    for signature in model.ref(7):
        graph = signature.scalar(4, "I")
        if graph >= len(subgraphs) or any(m.scalar(1, "I") >= len(subgraphs[graph].ref(0))
                                         for m in (*signature.ref(0), *signature.ref(1))):
            raise Corrupt("a signature names a tensor that does not exist")


def _check_tensor(tensor: Table, buffers: int, graph: int) -> None:
    name = bytes(tensor.ref(3, b"")).decode(errors="replace")
    if tensor.scalar(2, "I") >= buffers:
        raise Corrupt(f"subgraph {graph}: tensor '{name}' names buffer {tensor.scalar(2, 'I')} of {buffers}")
    shape = tensor.ref(0, np.zeros(0, np.int32)).astype(np.int64)
    if (shape < -1).any():
        raise Corrupt(f"subgraph {graph}: tensor '{name}' has shape {shape.tolist()}")
    itemsize = ITEMSIZE.get(tensor.scalar(1, "b"), 1)
    if np.prod(np.maximum(shape, 1), dtype=np.float64) * itemsize > MAX_TENSOR_BYTES:
        raise Corrupt(f"subgraph {graph}: tensor '{name}' of shape {shape.tolist()} would not fit in memory")


def check_file(path: str | Path) -> None:
    """Raise a one-line ModelError naming `path` unless it is a well-formed TFLite flatbuffer."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc.strerror or exc}") from None
    try:
        check_bytes(data)
    except Corrupt as exc:
        raise ModelError(f"model file {path} is truncated or corrupt: {exc}") from None
