"""A small reader for MetaImage files (``.mha`` with the data inline, ``.mhd`` + raw file), as used by SPIDER.

No SimpleITK needed at run time (tests write their files with SimpleITK to check the reader against it).
MetaImage world coordinates are ITK's, i.e. LPS millimetres, so the affine goes straight into a
:class:`core.studies.volume.Volume`. ``TransformMatrix`` lists the direction cosines axis by axis (the first three
numbers are the direction of array axis 0), which is the transpose of ITK's row-major direction matrix.
"""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from core.studies.volume import Volume

_TYPES = {
    "MET_UCHAR": np.uint8, "MET_CHAR": np.int8, "MET_USHORT": np.uint16, "MET_SHORT": np.int16,
    "MET_UINT": np.uint32, "MET_INT": np.int32, "MET_ULONG": np.uint64, "MET_LONG": np.int64,
    "MET_ULONG_LONG": np.uint64, "MET_LONG_LONG": np.int64, "MET_FLOAT": np.float32, "MET_DOUBLE": np.float64,
}


class MetaImageError(ValueError):
    """Not a MetaImage file we can read; the message names the file and the reason."""


def read_header(path: Path) -> tuple[dict[str, str], int]:
    """Header fields and the byte offset where the data starts (after the ``ElementDataFile`` line)."""
    fields: dict[str, str] = {}
    with open(path, "rb") as fh:
        offset = 0
        for _ in range(200):
            line = fh.readline()
            if not line:
                break
            offset += len(line)
            text = line.decode("latin-1").strip()
            if "=" not in text:
                raise MetaImageError(f"{path}: not a MetaImage header line: {text[:60]!r}")
            key, _, value = text.partition("=")
            fields[key.strip()] = value.strip()
            if key.strip() == "ElementDataFile":
                return fields, offset
    raise MetaImageError(f"{path}: no ElementDataFile line in the header")


def read_mha(path: Path | str, modality: str = "MR") -> Volume:
    path = Path(path)
    header, offset = read_header(path)
    try:
        ndims = int(header.get("NDims", "3"))
        dims = [int(v) for v in header["DimSize"].split()]
        dtype = np.dtype(_TYPES[header["ElementType"]])
    except (KeyError, ValueError) as exc:
        raise MetaImageError(f"{path}: incomplete or unsupported header ({exc})") from None
    channels = int(header.get("ElementNumberOfChannels", "1"))
    if channels != 1:
        raise MetaImageError(f"{path}: {channels}-channel images are not supported")
    if ndims not in (2, 3) or len(dims) != ndims:
        raise MetaImageError(f"{path}: only 2D/3D images are supported (NDims={ndims}, DimSize={dims})")
    big = header.get("BinaryDataByteOrderMSB", header.get("ElementByteOrderMSB", "False")).lower() == "true"
    dtype = dtype.newbyteorder(">" if big else "<")
    data_file = header["ElementDataFile"]
    if data_file == "LOCAL":
        raw = path.read_bytes()[offset:]
    else:
        raw = (path.parent / data_file).read_bytes()
    if header.get("CompressedData", "False").lower() == "true":
        try:
            raw = zlib.decompress(raw)
        except zlib.error as exc:
            raise MetaImageError(f"{path}: corrupt compressed data ({exc})") from None
    n = int(np.prod(dims))
    if len(raw) < n * dtype.itemsize:
        raise MetaImageError(f"{path}: truncated data ({len(raw)} bytes, needs {n * dtype.itemsize})")
    arr = np.frombuffer(raw[: n * dtype.itemsize], dtype=dtype).astype(dtype.newbyteorder("="))
    arr = arr.reshape(dims[::-1]).transpose(tuple(range(ndims))[::-1])  # x fastest on disk -> data[x, y, z]
    spacing = [float(v) for v in header.get("ElementSpacing", " ".join(["1"] * ndims)).split()]
    zeros = " ".join(["0"] * ndims)
    origin = [float(v) for v in header.get("Offset", header.get("Origin", header.get("Position", zeros))).split()]
    matrix = [float(v) for v in header.get("TransformMatrix", header.get("Rotation", header.get("Orientation", "")))
              .split()] or list(np.eye(ndims).ravel())
    direction = np.asarray(matrix, dtype=float).reshape(ndims, ndims).T  # columns = axis directions
    affine = np.eye(4)
    affine[:ndims, :ndims] = direction * np.asarray(spacing)[None, :]
    affine[:ndims, 3] = origin
    if ndims == 2:
        arr = arr[:, :, None]
    return Volume(data=np.ascontiguousarray(arr), affine=affine, modality=modality,
                  series_description=path.stem, series_uid=f"mha:{path.name}", source_paths=[path])
