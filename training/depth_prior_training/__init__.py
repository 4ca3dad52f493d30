"""Offline training for depth_prior_ros (never imported by the ROS nodes).

Recipes: ``ssd_teacher`` (monodepth2-style self-supervised teacher, or a depth-supervised teacher on
synthetic ground truth), ``ssd_student`` (the SSD robust student, Depth Anything architecture) and
``jasmine`` (single-step Stable Diffusion fine-tuning). Entry point: ``python -m depth_prior_training.train
--config CONFIG.yaml`` (or under ``accelerate launch``).
"""
__version__ = "0.1.0"
