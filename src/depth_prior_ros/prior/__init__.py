"""Embodied metric prior: ground-plane depth, road/ground/vertical scene depth, caching."""
from .cache import GroundGeometry, GroundPriorCache, ScenePriorCache
from .ground import ground_depth, horizon_row, ray_ground_z
from .scene import (CONFIDENCE, PRIOR_MODES, SOURCE_GROUND, SOURCE_INPAINTED, SOURCE_NAMES, SOURCE_NONE,
                    SOURCE_ROAD, SOURCE_VERTICAL, ScenePrior, inpaint_inverse_depth, scene_prior,
                    vertical_surface_depth)

__all__ = ["GroundGeometry", "GroundPriorCache", "ScenePriorCache", "ground_depth", "horizon_row", "ray_ground_z", "CONFIDENCE",
           "PRIOR_MODES", "SOURCE_GROUND", "SOURCE_INPAINTED", "SOURCE_NAMES", "SOURCE_NONE", "SOURCE_ROAD",
           "SOURCE_VERTICAL", "ScenePrior", "inpaint_inverse_depth", "scene_prior", "vertical_surface_depth"]
