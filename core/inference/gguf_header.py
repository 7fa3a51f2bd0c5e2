"""Read a GGUF file's header (metadata and tensor table) without loading the model, and validate the file.

A small parser of the GGUF v2/v3 layout (magic ``GGUF``, version, tensor count, key/value metadata, tensor infos,
aligned tensor data) that never touches the weights and skips large arrays (the tokenizer's vocabulary and merges,
only their length is kept): ``gguf.GGUFReader`` reads them all and takes ~30x longer, too slow to list a folder of
models. The type tables come from the ``gguf`` package.

``read_gguf(path)`` returns a :class:`GGUFHeader`; ``validate_gguf(path)`` additionally checks that every tensor's
data lies inside the file, which catches an interrupted download or copy. Both raise :class:`GGUFError`, whose
message names the file and what is wrong with it.
"""
from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
_SMALL_ARRAY = 64  # arrays up to this length are kept as values; longer ones only as their length

# GGUF metadata value types: id -> struct format (None: variable size)
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9

# ggml tensor types and llama file types come from the `gguf` package (llama.cpp's own Python package), so new
# quantisations are known as soon as it is upgraded.
GGML_TYPES: dict[int, tuple[str, int, int]] = {  # id -> (name, elements per block, bytes per block)
    int(t): (t.name, *GGML_QUANT_SIZES[t]) for t in GGMLQuantizationType if t in GGML_QUANT_SIZES}
FILE_TYPES = {  # general.file_type (llama_ftype) -> the quantisation name users know
    int(f): f.name.removeprefix("MOSTLY_").removeprefix("ALL_") for f in LlamaFileType if f.name != "GUESSED"}


class GGUFError(ValueError):
    """A file that is not a usable GGUF model; the message names the file."""


@dataclass
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    type_id: int
    offset: int  # relative to the start of the data section

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int | None:
        traits = GGML_TYPES.get(self.type_id)
        if traits is None:
            return None
        _, block, size = traits
        return self.n_elements // block * size


@dataclass
class GGUFHeader:
    path: Path
    version: int
    metadata: dict[str, Any]
    array_lengths: dict[str, int]  # long arrays that were skipped: key -> number of items
    tensors: list[TensorInfo] = field(default_factory=list)
    data_offset: int = 0
    file_size: int = 0

    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)

    @property
    def architecture(self) -> str:
        return str(self.get("general.architecture", "") or "")

    @property
    def kind(self) -> str:
        """"model", "adapter" (a LoRA GGUF) or "mmproj" (a multimodal projector / vision encoder)."""
        declared = str(self.get("general.type", "") or "")
        if declared in ("adapter", "mmproj"):
            return declared
        if self.get("adapter.type") is not None:
            return "adapter"
        if self.architecture == "clip":
            return "mmproj"
        return "model"

    @property
    def parameter_count(self) -> int:
        return sum(t.n_elements for t in self.tensors)

    @property
    def context_length(self) -> int | None:
        value = self.get(f"{self.architecture}.context_length")
        return int(value) if value is not None else None

    @property
    def block_count(self) -> int | None:
        value = self.get(f"{self.architecture}.block_count")
        return int(value) if value is not None else None

    @property
    def quantization(self) -> str:
        ftype = self.get("general.file_type")
        if ftype is not None and int(ftype) in FILE_TYPES:
            return FILE_TYPES[int(ftype)]
        counts: dict[str, int] = {}
        for t in self.tensors:
            name = GGML_TYPES.get(t.type_id, (f"type{t.type_id}", 1, 1))[0]
            counts[name] = counts.get(name, 0) + t.n_elements
        return max(counts, key=counts.get) if counts else "unknown"

    @property
    def chat_template(self) -> str | None:
        value = self.get("tokenizer.chat_template")
        return value if isinstance(value, str) and value.strip() else None

    @property
    def required_size(self) -> int | None:
        """Bytes the file must have to hold all tensor data (None if a tensor type is unknown)."""
        end = self.data_offset
        for t in self.tensors:
            size = t.nbytes
            if size is None:
                return None
            end = max(end, self.data_offset + t.offset + size)
        return end


class _Cursor:
    def __init__(self, buf: mmap.mmap | bytes, path: Path) -> None:
        self.buf, self.pos, self.path = buf, 0, path

    def _need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > len(self.buf):
            raise GGUFError(
                f"{self.path}: truncated or corrupt GGUF header (reading {what} at byte {self.pos} needs {n} bytes, "
                f"the file has {len(self.buf)})"
            )

    def unpack(self, fmt: str, what: str) -> Any:
        size = struct.calcsize(fmt)
        self._need(size, what)
        value = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += size
        return value

    def string(self, what: str) -> str:
        n = self.unpack("<Q", what)
        self._need(n, what)
        raw = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def skip_string(self, what: str) -> None:
        n = self.unpack("<Q", what)
        self._need(n, what)
        self.pos += n

    def value(self, vtype: int, key: str) -> tuple[Any, int | None]:
        """A metadata value; for a long array returns (None, its length) and skips it."""
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype], key), None
        if vtype == _STRING:
            return self.string(key), None
        if vtype == _ARRAY:
            item_type = self.unpack("<I", key)
            count = self.unpack("<Q", key)
            if count <= _SMALL_ARRAY:
                return [self.value(item_type, key)[0] for _ in range(count)], None
            if item_type in _SCALARS:
                size = struct.calcsize(_SCALARS[item_type]) * count
                self._need(size, key)
                self.pos += size
            elif item_type == _STRING:
                for _ in range(count):
                    self.skip_string(key)
            else:
                for _ in range(count):
                    self.value(item_type, key)
            return None, count
        raise GGUFError(f"{self.path}: corrupt GGUF metadata (unknown value type {vtype} for key {key!r})")


def read_gguf(path: Path | str) -> GGUFHeader:
    """Parse the header of a GGUF file; raises GGUFError for a missing, non-GGUF or truncated header."""
    path = Path(path)
    if not path.is_file():
        raise GGUFError(f"{path}: no such model file")
    size = path.stat().st_size
    if size < 24:
        raise GGUFError(f"{path}: not a GGUF model file (only {size} bytes)")
    with path.open("rb") as fh:
        magic = fh.read(4)
        if magic != MAGIC:
            raise GGUFError(f"{path}: not a GGUF model file (starts with {magic!r}, expected {MAGIC!r})")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _parse(_Cursor(buf, path), path, size)


def _parse(cur: _Cursor, path: Path, size: int) -> GGUFHeader:
    cur.pos = 4
    version = cur.unpack("<I", "version")
    if version not in (2, 3):
        raise GGUFError(f"{path}: unsupported GGUF version {version} (this reader knows versions 2 and 3)")
    n_tensors = cur.unpack("<Q", "tensor count")
    n_kv = cur.unpack("<Q", "metadata count")
    if n_tensors > 10_000_000 or n_kv > 10_000_000:
        raise GGUFError(f"{path}: corrupt GGUF header ({n_tensors} tensors, {n_kv} metadata keys)")
    metadata: dict[str, Any] = {}
    lengths: dict[str, int] = {}
    for _ in range(n_kv):
        key = cur.string("metadata key")
        vtype = cur.unpack("<I", f"type of {key!r}")
        value, length = cur.value(vtype, key)
        if length is None:
            metadata[key] = value
        else:
            lengths[key] = length
    tensors = []
    for _ in range(n_tensors):
        name = cur.string("tensor name")
        n_dims = cur.unpack("<I", f"dimensions of {name}")
        if n_dims > 8:
            raise GGUFError(f"{path}: corrupt tensor table ({name!r} claims {n_dims} dimensions)")
        shape = tuple(cur.unpack("<Q", f"shape of {name}") for _ in range(n_dims))
        type_id = cur.unpack("<I", f"type of {name}")
        offset = cur.unpack("<Q", f"offset of {name}")
        tensors.append(TensorInfo(name, shape, type_id, offset))
    alignment = int(metadata.get("general.alignment", DEFAULT_ALIGNMENT) or DEFAULT_ALIGNMENT)
    data_offset = (cur.pos + alignment - 1) // alignment * alignment
    return GGUFHeader(path, version, metadata, lengths, tensors, data_offset, size)


def validate_gguf(path: Path | str, expect_kind: str | None = None) -> GGUFHeader:
    """Read the header and check the file is complete; ``expect_kind`` ("model", "adapter", "mmproj") if given."""
    header = read_gguf(path)
    required = header.required_size
    if required is not None and header.file_size < required:
        raise GGUFError(
            f"{header.path}: truncated GGUF file ({header.file_size:,} bytes, its tensors need {required:,}); "
            "the download or copy was probably interrupted"
        )
    if required is None and header.tensors:
        last = max(header.tensors, key=lambda t: t.offset)
        if header.data_offset + last.offset >= header.file_size:
            raise GGUFError(f"{header.path}: truncated GGUF file (tensor {last.name!r} starts past the end)")
    if not header.tensors:
        raise GGUFError(f"{header.path}: GGUF file without tensors (a vocabulary-only file is not a model)")
    if expect_kind is not None and header.kind != expect_kind:
        raise GGUFError(f"{header.path}: expected a GGUF {expect_kind}, this file is a GGUF {header.kind}")
    return header


def projector_problem(model: GGUFHeader, projector: GGUFHeader) -> str | None:
    """Why ``projector`` cannot feed ``model``, or None. The projector's output width must be the model's embedding
    width (llama.cpp checks the same when it loads them and fails with a less clear message)."""
    if projector.kind != "mmproj":
        return f"{projector.path.name} is a GGUF {projector.kind}, not a vision projector (mmproj)"
    if not projector.get("clip.has_vision_encoder", True):
        return f"{projector.path.name} has no vision encoder"
    width = projector.get("clip.vision.projection_dim")
    n_embd = model.get(f"{model.architecture}.embedding_length")
    if width is not None and n_embd is not None and int(width) != int(n_embd):
        return (f"the projector {projector.path.name} does not match the model {model.path.name}: it produces "
                f"{int(width)}-wide image embeddings, the model expects {int(n_embd)}")
    return None
