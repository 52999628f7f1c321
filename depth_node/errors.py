"""One exception type for user-facing failures, so the CLI and the node can report them without a traceback
(`BackendError` is the kind a backend or engine build raises)."""


class DepthNodeError(RuntimeError):
    """A failure the user can act on (bad file, bad config, missing dependency); the message says how."""


class BackendError(DepthNodeError):
    """A backend that cannot run here (missing package, no GPU, bad engine) or failed at run time.

    Defined here, below export and inference, because both raise it: building a TensorRT engine (export) fails
    for the same reasons as running one (inference), and callers catch one type for both."""
