#!/usr/bin/env bash
# The one set-up path of depth_prior_ros: scripts/test.sh, scripts/demo.sh, the Makefile and .ci/run all
# call this. It creates .venv (if missing), installs torch, the pinned requirements and the package itself
# (editable), then writes a stamp so that the next call is a fast no-op.
#
#   bash scripts/setup_env.sh            # set up / bring up to date
#   FORCE=1 bash scripts/setup_env.sh    # redo every step even if the stamp matches
#
# Environment knobs:
#   PYTHON=python3.11          interpreter used to create the venv (3.10-3.12; default python3)
#   DEPTH_PRIOR_VENV=/path     venv location (default: <repo>/.venv)
#   DEPTH_PRIOR_TORCH=spec     torch requirement installed when torch is missing (default torch==2.13.0)
#
# CUDA users: create the venv and install your CUDA torch build into it before running this script;
# a torch that already imports in the venv is kept, and nothing in requirements.txt asks for another.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DEPTH_PRIOR_VENV:-$REPO_ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${DEPTH_PRIOR_TORCH:-torch==2.13.0}"
STAMP="$VENV/.depth_prior_ros_setup.stamp"
VPY="$VENV/bin/python"

say() { printf '[setup_env] %s\n' "$*" >&2; }

# What the environment depends on: the pinned requirements, the package metadata, the torch spec and
# this script. Any change to these makes the stamp stale and the next call reinstalls.
stamp_key() {
    {
        cat "$REPO_ROOT/requirements.txt" "$REPO_ROOT/setup.py" "$REPO_ROOT/setup.cfg" \
            "$REPO_ROOT/training/pyproject.toml" "$REPO_ROOT/scripts/build_tf2_msgs.py" "${BASH_SOURCE[0]}"
        printf 'torch-spec=%s\n' "$TORCH_SPEC"
    } | { command -v sha256sum >/dev/null && sha256sum || shasum -a 256; } | cut -d' ' -f1
}

KEY="$(stamp_key)"
if [[ -z "${FORCE:-}" && -x "$VPY" && -f "$STAMP" && "$(cat "$STAMP")" == "$KEY" ]]; then
    exit 0  # up to date: the common case, kept well under a second
fi

start_s=$SECONDS

if [[ ! -x "$VPY" ]]; then
    if ! command -v "$PYTHON" >/dev/null 2>&1; then
        say "error: '$PYTHON' not found; install Python 3.10-3.12 or set PYTHON=/path/to/python3"
        exit 1
    fi
    say "creating $VENV with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
fi

py_version="$("$VPY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
case "$py_version" in
    3.10|3.11|3.12) ;;
    *) say "warning: Python $py_version is untested (ROS 2 Humble..Kilted use 3.10-3.12)" ;;
esac

PIP=("$VPY" -m pip --disable-pip-version-check)

# 1) torch first, so that the ranges other packages ask for are already satisfied by this build and pip
#    never swaps in another one.
if torch_version="$("$VPY" -c 'import torch; print(torch.__version__)' 2>/dev/null)"; then
    say "keeping the installed torch $torch_version"
else
    say "installing $TORCH_SPEC"
    "${PIP[@]}" install "$TORCH_SPEC"
fi

# 2) pinned requirements (ROS 2 wheels, numerics, model libraries, colcon, test tools).
say "installing requirements.txt"
"${PIP[@]}" install -r "$REPO_ROOT/requirements.txt"

# 2b) tf2_msgs has no wheel: build TFMessage from its definition with the wheels' rosidl generators
#     (seconds; a no-op where a ROS 2 distribution or an earlier run provides it).
say "checking tf2_msgs"
"$VPY" "$REPO_ROOT/scripts/build_tf2_msgs.py" "$VENV"

# 3) the package itself, editable (src layout). setuptools comes from requirements (colcon-core pins it
#    below 80, as `colcon build --symlink-install` needs), so no isolated build environment is fetched.
say "installing depth_prior_ros (editable)"
"${PIP[@]}" install --no-deps --no-build-isolation -e "$REPO_ROOT"
# ... and the offline training package beside it (its dependencies are in requirements.txt too).
say "installing depth_prior_training (editable)"
"${PIP[@]}" install --no-deps --no-build-isolation -e "$REPO_ROOT/training"

# A broken install should fail here, not later inside a test.
"$VPY" -c 'import depth_prior_ros, torch, numpy, cv2, yaml, tf2_msgs.msg' \
    || { say "error: the environment does not import; see the pip output above"; exit 1; }
[[ -x "$VENV/bin/depth-prior" ]] || { say "error: console script depth-prior was not installed"; exit 1; }

printf '%s\n' "$KEY" > "$STAMP"
say "ready in $((SECONDS - start_s)) s: $VENV"
