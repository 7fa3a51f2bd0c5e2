"""Loading spine studies (DICOM, NIfTI, plain radiographs) into one volume model."""
from core.studies.errors import StudyLoadError
from core.studies.loaders import load_series, scan
from core.studies.volume import Volume

__all__ = ["StudyLoadError", "Volume", "load_series", "scan"]
