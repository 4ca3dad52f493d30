#!/usr/bin/env bash
# The main job on this machine: set up (or reuse) the environment and run `depth-prior demo`.
# Extra arguments go to the demo (see `depth-prior demo --help`).
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

bash scripts/setup_env.sh
source scripts/local_ros_env.sh
VENV="${DEPTH_PRIOR_VENV:-$REPO_ROOT/.venv}"

exec "$VENV/bin/depth-prior" demo "$@"
