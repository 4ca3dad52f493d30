# Sourced (not run) by scripts/test.sh, scripts/demo.sh and the Makefile: keeps every rclpy process of a
# development machine or CI on loopback, in a DDS domain of its own.
#
#   source scripts/local_ros_env.sh
#
# A vehicle keeps the ROS defaults: never source this in a deployment.
_dp_repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Discovery stays on this host (no multicast to 239.255.0.1 on any interface) ...
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
# ... and Fast DDS itself is told to open sockets on 127.0.0.1 only.
export FASTDDS_DEFAULT_PROFILES_FILE="$_dp_repo_root/config/fastdds_localhost.xml"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
# A domain per run so parallel runs (two checkouts, CI beside a developer) do not see each other:
# DEPTH_PRIOR_ROS_DOMAIN_ID pins it, else one in 150-229 (depth_prior_ros.processes.DOMAIN_RANGE). An
# inherited ROS_DOMAIN_ID is ignored on purpose, since it may be the domain of a real robot on the machine.
export ROS_DOMAIN_ID="${DEPTH_PRIOR_ROS_DOMAIN_ID:-$(( 150 + $$ % 80 ))}"
# The tools (demo, replay --live, bench, soak, tests) take the run's domain from this variable.
export DEPTH_PRIOR_ROS_DOMAIN_ID="$ROS_DOMAIN_ID"
unset _dp_repo_root
