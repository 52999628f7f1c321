"""One exception type for user-facing failures, so the CLI and the node can report them without a traceback."""


class DepthNodeError(RuntimeError):
    """A failure the user can act on (bad file, bad config, missing dependency); the message says how."""
