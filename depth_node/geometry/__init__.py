"""Camera geometry: intrinsics, projection, poses, point clouds."""
