"""The ROS 2 shell: nodes, message conversion, parameters, QoS, pose source, diagnostics.

Only ``depth_node``, ``prior_node`` and ``camera_node`` import rclpy at module level; conversions (for
arrays), params, worker, diagnostics and backend_manager import without ROS, so tools and tests can use
them anywhere. Modules:
  conversions      Image / CameraInfo / PointCloud2 <-> numpy, colourised depth
  params           parameter defaults, descriptions, parsing into typed settings
  qos              subscription / publisher QoS from the parameters
  pose_source      tf2_ros (when installed) or static extrinsics
  worker           one-slot mailbox with exact frame accounting, worker thread, throttled logs
  backend_manager  network load / warm-up / degrade-to-prior / retry
  diagnostics      /diagnostics report building
  camera_node      the shared node shell and run_node()
  depth_node, prior_node   the executables
"""
