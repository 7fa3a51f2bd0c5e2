"""Training of the radiograph landmark model (68 vertebra corners, T1-L5, on AP spine radiographs).

``spinemed-train xray train`` learns it from data in the AASCE layout (e.g. ``../shared/data/xray-aasce-train``) on
a patient-wise split, and ``spinemed-train xray ship`` exports it to ONNX for :mod:`core.xray.landmarks`.
"""
