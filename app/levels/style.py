"""Colours and sizes shared by the 2D labels, the 3D markers and the tests that look for them on screen."""
from __future__ import annotations

MARKER_RGB = (0, 200, 255)  # a named vertebra
SELECTED_RGB = (255, 140, 0)  # the selected level
UNNAMED_RGB = (230, 70, 230)  # detected, not yet named: the user should name one
DISC_RGB = (140, 220, 255)
TEXT_RGB = (255, 255, 255)

MARKER_RADIUS_PX = 6
SELECTED_RADIUS_PX = 8
HIT_RADIUS_PX = 10
LABEL_RANGE_MM = 30.0  # labels are drawn on slices within this distance of the centroid
VERTEBRA_PICK_MM = 18.0  # a click this close to a centroid selects its vertebra
DISC_HALF_WIDTH_MM = 14.0

SPHERE_RADIUS_MM = 4.5
SELECTED_SPHERE_RADIUS_MM = 6.0
