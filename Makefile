# Shortcuts; every target goes through scripts/setup_env.sh (a no-op once the venv is up to date).
#   make test ARGS='-m "not slow"'      make demo ARGS='--help'      make bench ARGS='...'
SHELL := /bin/bash
VENV ?= .venv
ARGS ?=
# rclpy processes started from here stay on loopback in a domain of their own.
LOCAL_ROS := source scripts/local_ros_env.sh

.PHONY: help setup test demo bench soak colcon ci clean

help:
	@echo "make setup | test | demo | bench | soak | colcon | ci | clean   (extra arguments: ARGS='...')"

setup:
	bash scripts/setup_env.sh

test:
	bash scripts/test.sh $(ARGS)

demo:
	bash scripts/demo.sh $(ARGS)

bench: setup
	$(LOCAL_ROS) && $(VENV)/bin/depth-prior bench $(ARGS)

soak: setup
	$(LOCAL_ROS) && $(VENV)/bin/depth-prior soak $(ARGS)

# Build the colcon workspace (ros2_ws/src/depth_prior_ros links to this checkout) with the venv's colcon.
colcon: setup
	cd ros2_ws && $(abspath $(VENV))/bin/colcon build --symlink-install $(ARGS)

ci:
	bash .ci/run

clean:
	rm -rf ros2_ws/build ros2_ws/install ros2_ws/log .pytest_cache
