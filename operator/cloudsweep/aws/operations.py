"""AWS operation names, as AWS spells them (``CreateLoadBalancer``), and boto3's method for each.

Actions name each call once, by its operation: the name labels the error if the call fails, and
the method is derived from it, so the two cannot disagree.
"""

from __future__ import annotations

from botocore import xform_name


def method_name(operation: str) -> str:
    """boto3's client method for ``operation``: ``CreateLBCookieStickinessPolicy`` ->
    ``create_lb_cookie_stickiness_policy`` (botocore's own rule, acronyms included)."""
    return str(xform_name(operation))
