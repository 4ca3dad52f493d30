"""Validation against LiDAR while training: the held-out frames of the frame stores, every N steps.

Each held-out frame: the network's prediction at the training size, resized to the LiDAR image's native
size, scored with ``depth_prior_ros.replay.metrics`` two ways:
  median  per-frame median scaling (the self-supervised convention: is the *shape* right?)
  prior   aligned to the embodied ground prior of the node's pipeline (``ScenePriorCache.prior`` at
          the frame's ground pose, with the frame's road mask when the store was built with a road
          segmenter, then ``align.align_to_prior`` with the pipeline's settings), i.e. the
          metric depth the node would publish from this network; ``prior_accepted`` is the share of
          frames whose fit the aligner accepts.
Protocol: KITTI (Garg crop, LiDAR depth in (1e-3, 80) m), per-frame means.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KEYS = ("abs_rel", "sq_rel", "rmse", "delta1")


@dataclass
class ValidationFrame:
    name: str
    image: np.ndarray              # uint8 (h, w, 3) at the store size
    gt: np.ndarray                 # float32 (H, W) native, NaN unknown
    camera: object                 # PinholeCamera at (H, W)
    T_ground_from_camera: np.ndarray | None
    road: np.ndarray | None = None  # bool (H, W): the road segmenter's mask (the node's scene prior with it)


def validation_frames(stores, limit: int | None = None) -> list[ValidationFrame]:
    """The held-out frames with LiDAR of every store (evenly thinned to ``limit`` frames)."""
    from depth_prior_ros.geometry.camera import PinholeCamera

    from .store import sparse_to_dense

    out = []
    for store in stores:
        for f in store.validation_frames:
            data = store.validation_data(f)
            if data is None:
                continue
            T = data["T_ground_from_camera"]
            out.append(ValidationFrame(f.name, store.image(f), sparse_to_dense(data),
                                       PinholeCamera(K=data["K"], width=int(data["width"]), height=int(data["height"])),
                                       None if not np.isfinite(T).all() else T, data.get("road")))
    if limit and len(out) > limit:
        out = [out[int(i)] for i in np.linspace(0, len(out) - 1, limit).round()]
    return out


class Validator:
    """``__call__(predict) -> dict`` of mean metrics over the validation frames.

    predict: uint8 images (N, h, w, 3) -> (values (N, h, w) float, kind) with kind ``scale_depth``
    (values are depth) or ``affine_disparity`` (values are disparity, depth = 1 / values for median
    scaling).
    """

    def __init__(self, frames: list[ValidationFrame], batch_size: int = 8):
        from depth_prior_ros.pipeline import PipelineConfig
        from depth_prior_ros.prior.cache import ScenePriorCache
        from depth_prior_ros.replay.metrics import EvalProtocol

        self.frames = frames
        self.batch_size = batch_size
        self.protocol = EvalProtocol.kitti()
        self.config = PipelineConfig()  # the node's default range and alignment settings
        self.priors = ScenePriorCache(self.config.prior_mode, self.config.min_depth, self.config.max_depth)
        self._priors: dict[str, object] = {}

    def prior(self, frame: ValidationFrame):
        if frame.name not in self._priors:
            self._priors[frame.name] = self.priors.prior(frame.camera, frame.T_ground_from_camera, frame.road,
                                                         inpaint=False)
        return self._priors[frame.name]

    def __call__(self, predict) -> dict:
        import cv2

        from depth_prior_ros.align import align_to_prior
        from depth_prior_ros.replay.metrics import mean_metrics, score_frame

        median, prior, accepted = [], [], []
        for start in range(0, len(self.frames), self.batch_size):
            chunk = self.frames[start:start + self.batch_size]
            values, kind = predict(np.stack([f.image for f in chunk]))
            for f, v in zip(chunk, values):
                native = cv2.resize(np.asarray(v, np.float32), (f.camera.width, f.camera.height),
                                    interpolation=cv2.INTER_LINEAR)
                with np.errstate(divide="ignore"):
                    depth = native if kind == "scale_depth" else 1.0 / native
                median.append(score_frame(depth, f.gt, self.protocol.with_scaling("median")))
                if f.T_ground_from_camera is not None:
                    p = self.prior(f)
                    fit = align_to_prior(native, kind, p.depth, p.confidence, config=self.config.align)
                    accepted.append(fit.ok)
                    if fit.ok and fit.depth is not None:
                        prior.append(score_frame(fit.depth, f.gt, self.protocol))
        out = {f"median_{k}": v for k, v in mean_metrics(median).items() if k in KEYS}
        if accepted:
            out.update({f"prior_{k}": v for k, v in mean_metrics(prior).items() if k in KEYS})
            out["prior_accepted"] = float(np.mean(accepted))
        out["frames"] = len(self.frames)
        return out
