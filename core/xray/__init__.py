"""Plain radiographs (projection images) of the spine: vertebra landmarks, Cobb angles, calibrated measurement.

- :mod:`core.xray.levels`: the 17 vertebrae T1-L5 and the order of their 68 corner landmarks.
- :mod:`core.xray.aasce`: readers for the AASCE challenge's landmark/angle CSV layout.
- :mod:`core.xray.cobb`: clinical Cobb curves with end vertebrae and regions; the AASCE challenge's angles.
- :mod:`core.xray.metrics`: SMAPE, angle MAE, landmark error.
- :mod:`core.xray.measure`: distance/angle/Cobb in the image plane with the scale said (mm or px).
- :mod:`core.xray.landmarks`: the learned landmark model (onnxruntime) with its confidence check.
"""
