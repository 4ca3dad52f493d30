"""Embodied metric prior: ground-plane depth, road/ground/vertical scene depth, caching."""
from .cache import GroundGeometry, GroundPriorCache, ScenePriorCache
from .ground import RayGrid, ground_depth, horizon_row
from .scene import (CONFIDENCE, PRIOR_MODES, SOURCE_GROUND, SOURCE_INPAINTED, SOURCE_NAMES, SOURCE_NONE,
                    SOURCE_ROAD, SOURCE_VERTICAL, ScenePrior, inpaint_inverse_depth, scene_prior,
                    vertical_surface_depth)

__all__ = ["GroundGeometry", "GroundPriorCache", "ScenePriorCache", "RayGrid", "ground_depth", "horizon_row", "CONFIDENCE",
           "PRIOR_MODES", "SOURCE_GROUND", "SOURCE_INPAINTED", "SOURCE_NAMES", "SOURCE_NONE", "SOURCE_ROAD",
           "SOURCE_VERTICAL", "ScenePrior", "inpaint_inverse_depth", "scene_prior", "vertical_surface_depth"]
