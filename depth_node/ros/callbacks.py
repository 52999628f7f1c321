"""Subscription callbacks in the form this rclpy calls them, one code path for every distribution.

rclpy passes MessageInfo (publisher sequence numbers, which reveal frames lost before the node) to callbacks
that take two parameters from Iron on; Humble's executor calls `callback(msg)` only, so a two-parameter
callback dies on the first message. The form is chosen once by feature detection (does this rclpy's
Subscription know callback types?), never by distribution name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Handler = Callable[[Any, Any], None]  # (message, MessageInfo or None)


def passes_message_info(subscription_cls: type | None = None) -> bool:
    """True where rclpy hands MessageInfo to two-parameter callbacks (Iron, Jazzy, Kilted), False on Humble."""
    if subscription_cls is None:
        from rclpy.subscription import Subscription as subscription_cls
    return hasattr(subscription_cls, "CallbackType")


def subscription_callback(handler: Handler, message_info: bool) -> Callable[..., None]:
    """`handler(msg, info)` wrapped as the callback rclpy calls: two parameters with MessageInfo, else one
    (info None). The wrapper's signature is what rclpy inspects, so it must have exactly that arity."""
    if message_info:
        def with_info(msg: Any, info: Any) -> None:
            handler(msg, info)

        return with_info

    def message_only(msg: Any) -> None:
        handler(msg, None)

    return message_only
