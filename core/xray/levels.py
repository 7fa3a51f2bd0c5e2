"""The 17 vertebrae an AP radiograph landmark set covers (T1 to L5) and the order of the 68 corner landmarks.

Landmark ``4 * v + c`` is corner ``c`` of vertebra ``v`` (0 = T1 ... 16 = L5), corners in the AASCE order:
0 upper-left, 1 upper-right, 2 lower-left, 3 lower-right, left and right as the image shows them.
"""
from __future__ import annotations

LEVELS: tuple[str, ...] = tuple([f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)])
N_VERTEBRAE = len(LEVELS)
N_LANDMARKS = 4 * N_VERTEBRAE
CORNERS = ("upper-left", "upper-right", "lower-left", "lower-right")


def endplate_name(index: int) -> str:
    """Endplate ``index`` (0..33, top to bottom: T1 superior, T1 inferior, T2 superior, ...) as e.g. 'T7 inferior'."""
    return f"{LEVELS[index // 2]} {'superior' if index % 2 == 0 else 'inferior'}"


def position_name(position: float) -> str:
    """A position along the column in vertebra units (0 = T1, 0.5 = the T1-T2 disc, ...) as a level or disc name."""
    v = round(position * 2) / 2
    if v == int(v):
        return LEVELS[int(v)]
    return f"{LEVELS[int(v)]}-{LEVELS[int(v) + 1]}"
