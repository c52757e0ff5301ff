"""moto's server, made to check what S3 checks where moto 5.2 does not.

1. Bucket policy conditions. moto 5.2 evaluates a bucket policy's Condition block
   without any request context, treats condition operators it does not implement as
   matched, and turns any statement whose condition fails into an explicit Deny. A
   tenant bucket's TLS-only statement (Deny s3:* when aws:SecureTransport is "false")
   would therefore deny every object request, even over HTTPS. This launcher gives the
   policy check the request's context and evaluates the operators Sanctum's policies use
   the way IAM does: Bool, Null, StringEquals and StringNotEquals (with their IfExists
   forms) over aws:SecureTransport, s3:if-none-match,
   s3:x-amz-server-side-encryption and s3:x-amz-server-side-encryption-aws-kms-key-id.
   Other operators keep moto's behaviour (the statement applies).
2. ExpectedBucketOwner. moto ignores x-amz-expected-bucket-owner (and the copy source's
   x-amz-source-expected-bucket-owner); S3 answers 403 AccessDenied when the bucket
   belongs to another account. This launcher does the same, with the owning account
   moto records for each bucket (accounts are chosen per request by moto, for example
   by the credentials of an assumed role in another account).

Everything else is moto unchanged. Usage: the same arguments as moto_server.
"""

import json
import sys
import threading
from urllib.parse import unquote

from moto import server
from moto.iam import access_control
from moto.moto_server import werkzeug_app
from moto.s3 import models as s3_models

_request = threading.local()

# Request headers S3 exposes as policy condition keys.
_HEADER_KEYS = {
    "s3:if-none-match": "HTTP_IF_NONE_MATCH",
    "s3:x-amz-server-side-encryption": "HTTP_X_AMZ_SERVER_SIDE_ENCRYPTION",
    "s3:x-amz-server-side-encryption-aws-kms-key-id": "HTTP_X_AMZ_SERVER_SIDE_ENCRYPTION_AWS_KMS_KEY_ID",
}


def _values(expected):
    return [str(v) for v in (expected if isinstance(expected, list) else [expected])]


def _operator_holds(operator, key, expected, context):
    present = key in context
    if operator == "Null":
        return any(v.lower() == ("false" if present else "true") for v in _values(expected))
    if_exists = operator.endswith("IfExists")
    base = operator[: -len("IfExists")] if if_exists else operator
    if not present:
        # As in IAM: a key the request does not carry makes IfExists operators and negated
        # operators hold, and the others fail.
        return if_exists or base.startswith("StringNot")
    actual = context[key]
    if base == "Bool":
        return any(v.lower() == actual for v in _values(expected))
    if base == "StringEquals":
        return actual in _values(expected)
    if base == "StringNotEquals":
        return actual not in _values(expected)
    return None


def _conditions_hold(conditions, context):
    for operator, keys in (conditions or {}).items():
        for key, expected in keys.items():
            holds = _operator_holds(operator, key, expected, context)
            if holds is None:
                continue  # an operator this launcher does not evaluate: moto's behaviour
            if not holds:
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
    context = dict(getattr(_request, "context", None) or {})
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


def _is_s3(environ):
    auth = environ.get("HTTP_AUTHORIZATION", "") + environ.get("QUERY_STRING", "")
    return "/s3/aws4_request" in auth or "%2Fs3%2Faws4_request" in auth


def _owner_of(bucket):
    found = s3_models.s3_backends.bucket_accounts.get(bucket)
    return found[1] if found else None


def _wrong_owner(environ):
    """The bucket of this request (path-style) or of its copy source, when its owner is
    not the account the request expects."""
    expected = environ.get("HTTP_X_AMZ_EXPECTED_BUCKET_OWNER")
    path = environ.get("PATH_INFO", "").lstrip("/")
    bucket = path.split("/", 1)[0]
    if expected and bucket:
        owner = _owner_of(bucket)
        if owner is not None and owner != expected:
            return bucket
    expected_source = environ.get("HTTP_X_AMZ_SOURCE_EXPECTED_BUCKET_OWNER")
    source = unquote(environ.get("HTTP_X_AMZ_COPY_SOURCE", "")).lstrip("/").split("/", 1)[0]
    if expected_source and source:
        owner = _owner_of(source)
        if owner is not None and owner != expected_source:
            return source
    return None


_dispatch = werkzeug_app.DomainDispatcherApplication.__call__


def _call(app, environ, start_response):
    if _is_s3(environ):
        refused = _wrong_owner(environ)
        if refused is not None:
            body = (
                '<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
                "<Message>Access Denied (the bucket is owned by another account than "
                f"the expected owner)</Message><BucketName>{refused}</BucketName></Error>"
            ).encode()
            start_response(
                "403 Forbidden",
                [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))],
            )
            return [body]
    # Werkzeug serves each request on its own thread; the policy check runs inside it.
    context = {
        "aws:SecureTransport": "true" if environ.get("wsgi.url_scheme") == "https" else "false"
    }
    for key, header in _HEADER_KEYS.items():
        if header in environ:
            context[key] = environ[header]
    _request.context = context
    try:
        return _dispatch(app, environ, start_response)
    finally:
        _request.context = None


s3_models.FakeBucket.get_permission = _get_permission
werkzeug_app.DomainDispatcherApplication.__call__ = _call

if __name__ == "__main__":
    sys.exit(server.main())
