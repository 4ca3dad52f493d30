# Sourced (not run) by scripts/test.sh, scripts/demo.sh and the benchmark entry points: keeps every
# rclpy process of a development machine or CI on loopback, in a DDS domain of its own.
#
#   source scripts/local_ros_env.sh [FIRST_DOMAIN LAST_DOMAIN]
#
# A vehicle keeps the ROS defaults: never source this in a deployment.
_dp_repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_dp_first="${1:-150}"
_dp_last="${2:-229}"

# Discovery stays on this host (no multicast to 239.255.0.1 on any interface) ...
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
# ... and Fast DDS itself is told to open sockets on 127.0.0.1 only.
export FASTDDS_DEFAULT_PROFILES_FILE="$_dp_repo_root/config/fastdds_localhost.xml"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
# A domain per run so parallel runs (two checkouts, CI beside a developer) do not see each other.
# DEPTH_PRIOR_ROS_DOMAIN_ID (or DEPTH_PRIOR_DOMAIN_ID) pins it; an inherited ROS_DOMAIN_ID is ignored on
# purpose, since it may be the domain of a real robot on the same machine.
_dp_pin="${DEPTH_PRIOR_ROS_DOMAIN_ID:-${DEPTH_PRIOR_DOMAIN_ID:-}}"
if [[ -n "$_dp_pin" ]]; then
    export ROS_DOMAIN_ID="$_dp_pin"
else
    export ROS_DOMAIN_ID=$(( _dp_first + $$ % (_dp_last - _dp_first + 1) ))
fi
# The demo/replay (DEPTH_PRIOR_DOMAIN_ID) and benchmark (DEPTH_PRIOR_ROS_DOMAIN_ID) tools pick their own
# domain unless told: tell them to use this run's.
export DEPTH_PRIOR_ROS_DOMAIN_ID="$ROS_DOMAIN_ID" DEPTH_PRIOR_DOMAIN_ID="$ROS_DOMAIN_ID"
unset _dp_repo_root _dp_first _dp_last _dp_pin
