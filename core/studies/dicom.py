"""DICOM import: read headers, group files into series, and load a series into a :class:`Volume`.

Handles single-frame slice stacks (sorted by ImagePositionPatient along the slice normal), enhanced multi-frame
files, projection radiographs (CR/DX, no patient position) and compressed transfer syntaxes (decoded by pydicom's
pixel handlers, pylibjpeg for JPEG 2000). Only de-identified demographics (age, sex) leave this package.

This module is the public entry point; the work is done in:

- ``dicom_header``: :class:`DicomHeader`, what is kept of one file, taken from a pydicom dataset;
- ``dicom_file``: reading and checking one file's header (:func:`read_header`, cached), non-image objects refused;
- ``dicom_geometry``: slice sorting, spacing, gaps, tilt and the LPS affine (stacks, radiographs, multi-frame);
- ``dicom_series``: scanning files into series (:func:`scan_files`), mixed series split;
- ``dicom_pixels``: pixel decoding, BitsStored / MONOCHROME1 handling, rescale to real-world values;
- ``dicom_load``: a series source into a Volume (:func:`load_series`), in threads or worker processes.
"""
from __future__ import annotations

from core.studies.dicom_file import DEFLATED_SYNTAX, DicomFileProblem, clear_header_cache, looks_like_dicom, read_header
from core.studies.dicom_geometry import StackGeometry, projection_affine, stack_geometry
from core.studies.dicom_header import NATIVE_LE_SYNTAXES, DicomHeader
from core.studies.dicom_load import load_series
from core.studies.dicom_series import scan_files

__all__ = [
    "DEFLATED_SYNTAX",
    "NATIVE_LE_SYNTAXES",
    "DicomFileProblem",
    "DicomHeader",
    "StackGeometry",
    "clear_header_cache",
    "load_series",
    "looks_like_dicom",
    "projection_affine",
    "read_header",
    "scan_files",
    "stack_geometry",
]
