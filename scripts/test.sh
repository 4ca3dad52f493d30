#!/usr/bin/env bash
# Run the whole test suite: set up (or reuse) the environment, then pytest with loopback-only ROS 2.
#
#   bash scripts/test.sh                 # everything
#   bash scripts/test.sh -m "not slow"   # extra arguments go to pytest
#   bash scripts/test.sh tests/test_packaging_launch.py -x
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

bash scripts/setup_env.sh
source scripts/local_ros_env.sh
VENV="${DEPTH_PRIOR_VENV:-$REPO_ROOT/.venv}"

echo "[test] ROS_DOMAIN_ID=$ROS_DOMAIN_ID ROS_AUTOMATIC_DISCOVERY_RANGE=$ROS_AUTOMATIC_DISCOVERY_RANGE" >&2
exec "$VENV/bin/python" -m pytest "$@"
