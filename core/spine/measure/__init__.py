"""Spine measurements in patient millimetres (no Qt).

- :mod:`.geometry`: distances, angles, Cobb, slip and height ratios on LPS points, with their clinical grades;
- :mod:`.measurement`: :class:`SpineMeasurement`, one measurement as stored, exported and cited;
- :mod:`.outline`: a vertebral body's outline in its mid-sagittal plane (the local :class:`Frame` and the volume
  :class:`Sampler`), the image basis of
- :mod:`.auto`: the automatic measurements from a labelling and its image;
- :mod:`.store`: measurements per series in the study library.

Projection radiographs are measured on the image plane by :mod:`core.xray.measure`.
"""
