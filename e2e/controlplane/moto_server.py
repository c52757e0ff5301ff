"""moto's server, with bucket policies that can see aws:SecureTransport.

moto 5.2 evaluates a bucket policy's Condition block without any request context,
treats condition operators it does not implement (Bool among them) as matched, and
turns any statement whose condition fails into an explicit Deny. The standard
TLS-only statement of a tenant bucket (Deny s3:* when
aws:SecureTransport is "false") therefore denies every object request, even those
made over HTTPS. This launcher gives S3's policy check the transport of the request
being served and evaluates Bool conditions the way S3 does (case-insensitive string
match, any of the listed values). Everything else is moto unchanged.

Usage: the same arguments as moto_server.
"""

import json
import sys
import threading

from moto import server
from moto.iam import access_control
from moto.moto_server import werkzeug_app
from moto.s3 import models as s3_models

_request = threading.local()


def _bool_matches(expected, actual):
    values = expected if isinstance(expected, list) else [expected]
    return any(str(value).lower() == actual for value in values)


def _conditions_hold(conditions, context):
    # Operators other than Bool keep moto's behaviour (treated as holding). A Bool key
    # the request does not carry makes the condition false, as in AWS.
    for operator, keys in (conditions or {}).items():
        if operator != "Bool":
            continue
        for key, expected in keys.items():
            if key not in context or not _bool_matches(expected, context[key]):
                return False
    return True


def _get_permission(bucket, action, resource):
    # moto's own evaluation turns a statement whose condition does not hold into an
    # explicit Deny, whatever its Effect; here such a statement simply does not apply.
    result = access_control.PermissionResult
    if bucket.policy is None:
        return result.NEUTRAL
    statements = json.loads(bucket.policy)["Statement"]
    if isinstance(statements, dict):
        statements = [statements]
    context = {}
    secure = getattr(_request, "secure", None)
    if secure is not None:
        context["aws:SecureTransport"] = "true" if secure else "false"
    permitted = False
    for statement in statements:
        if not _conditions_hold(statement.get("Condition"), context):
            continue
        unconditioned = {k: v for k, v in statement.items() if k != "Condition"}
        verdict = access_control.IAMPolicyStatement(unconditioned).is_action_permitted(
            action, resource
        )
        if verdict == result.DENIED:
            return verdict
        permitted = permitted or verdict == result.PERMITTED
    return result.PERMITTED if permitted else result.NEUTRAL


_dispatch = werkzeug_app.DomainDispatcherApplication.__call__


def _call(app, environ, start_response):
    # Werkzeug serves each request on its own thread; the policy check runs inside it.
    _request.secure = environ.get("wsgi.url_scheme") == "https"
    try:
        return _dispatch(app, environ, start_response)
    finally:
        _request.secure = None


s3_models.FakeBucket.get_permission = _get_permission
werkzeug_app.DomainDispatcherApplication.__call__ = _call

if __name__ == "__main__":
    sys.exit(server.main())
