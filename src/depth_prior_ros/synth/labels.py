"""Pixel labels of synthetic frames: four coarse classes for the prior, finer semantics for everything else.

``Label`` is what the embodied prior and the metrics care about (the paper's road -> ground -> vertical
ladder). ``Semantic`` says which kind of object a pixel shows; ``COARSE_OF_SEMANTIC`` maps one to the
other so a finer class never needs special cases downstream.
"""
from __future__ import annotations

from enum import IntEnum

import numpy as np


class Label(IntEnum):
    """Coarse per-pixel class (uint8 values stored in ``SyntheticFrame.labels``)."""

    SKY = 0           # no surface: depth is NaN
    ROAD = 1          # drivable surface at exactly z = 0 (lane markings included)
    OTHER_GROUND = 2  # sidewalks, kerbs, verges: ground that is not road
    VERTICAL = 3      # things standing on the ground: cars, buildings, poles


class Semantic(IntEnum):
    """Fine per-pixel class (uint8 values stored in ``SyntheticFrame.semantic``)."""

    SKY = 0
    ROAD = 1
    LANE_MARKING = 2
    SIDEWALK = 3
    KERB = 4
    VERGE = 5
    CAR = 6
    BUILDING = 7
    POLE = 8


COARSE_OF_SEMANTIC = np.zeros(256, dtype=np.uint8)
COARSE_OF_SEMANTIC[Semantic.SKY] = Label.SKY
COARSE_OF_SEMANTIC[[Semantic.ROAD, Semantic.LANE_MARKING]] = Label.ROAD
COARSE_OF_SEMANTIC[[Semantic.SIDEWALK, Semantic.KERB, Semantic.VERGE]] = Label.OTHER_GROUND
COARSE_OF_SEMANTIC[[Semantic.CAR, Semantic.BUILDING, Semantic.POLE]] = Label.VERTICAL


def coarse_labels(semantic: np.ndarray) -> np.ndarray:
    """Semantic ids (any shape, uint8) -> coarse ``Label`` ids of the same shape (uint8)."""
    return COARSE_OF_SEMANTIC[np.asarray(semantic, dtype=np.uint8)]
