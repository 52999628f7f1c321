"""The camera zoo (`depth-node eval-zoo`): the node, with its default parameters, over held-out synthetic drives
rendered with cameras and scenes unlike the training camera, scored like `eval-bag --offline` and judged against
the acceptance limits of issue 15. Sits above `sim` (rendering), `ros` (the offline frame-core runner) and
`evaluate` (the bag scorer)."""
