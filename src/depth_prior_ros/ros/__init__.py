"""The ROS 2 shell: nodes, message conversion, inputs, QoS, pose source, diagnostics.

Only the nodes and ``inputs`` import rclpy / message packages at module level; conversions (for
arrays), params, worker, diagnostics, runtime and backend_manager import without ROS, so tools and
tests can use them anywhere. Each node reads top to bottom in its own file and owns the helpers here:
  conversions      Image / CameraInfo / PointCloud2 <-> numpy
  image_codec      camera encodings and JPEG/PNG -> RGB (shared with offline replay)
  stamp_pairing    image <-> camera_info pairing by stamp (pure)
  params           rclpy declarations of the parameter spec (depth_prior_ros.parameters)
  inputs           camera_info, image (raw | compressed) and road_mask subscriptions, checked and paired
  qos              subscription / publisher QoS from the parameters
  pose_source      tf2_ros (when installed) or static extrinsics
  worker           one-slot mailbox with exact frame accounting, worker thread, throttled logs
  backend_manager  network load / warm-up / degrade-to-prior / retry
  diagnostics      /diagnostics report building and publishing
  runtime          throttled frame logs, run_node()
  depth_node, prior_node   the executables
"""
