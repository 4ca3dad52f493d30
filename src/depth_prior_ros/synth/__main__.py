"""``python -m depth_prior_ros.synth [PRESET] [CONDITION]``: time one synthetic frame (best of 3, ms)."""
import sys

from .frames import benchmark

if __name__ == "__main__":
    preset_name = sys.argv[1] if len(sys.argv) > 1 else "nuscenes"
    condition = sys.argv[2] if len(sys.argv) > 2 else "day"
    print(benchmark(preset_name, repeats=3, condition=condition))
