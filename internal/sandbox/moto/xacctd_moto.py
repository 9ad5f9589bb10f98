"""xacctd sandbox extension for moto (written against moto 5.2.1).

Started instead of the bare ``moto_server``: it keeps moto's routing, XML
serialisation, accounts and state, and adds what the xacctd sandbox needs to
behave like AWS where xacctd depends on it:

* Redshift ``ModifyClusterIamRoles`` (stock moto answers HTTP 500): added roles
  report ``adding`` for a configurable delay, then ``in-sync``; removed roles
  report ``removing``, then disappear. At most 50 roles per cluster; each added
  role must exist in the cluster's own account and trust
  ``redshift.amazonaws.com``; ``InvalidClusterState`` while an earlier change is
  still applying. Status is computed lazily from timestamps when read.
* S3 bucket policies evaluated with principals and the conditions xacctd uses
  (``aws:SecureTransport``, ``s3:prefix``, ...). Requests count as HTTPS unless
  they carry ``X-Xacctd-Sandbox-Insecure: true``. Cross-account requests need an
  Allow in the bucket policy AND in the caller's identity policies, as in AWS
  (stock moto either allows everything or, with
  MOTO_S3_ALLOW_CROSSACCOUNT_ACCESS=false, denies everything).
* Redshift ``GetClusterCredentials`` is recorded, and
  ``POST /xacctd-sandbox/verify-cluster-credentials`` checks a password issued
  by it (used by the Redshift stand-in).
* ``GET|POST /xacctd-sandbox/config``: ``{"role_delay_seconds": 0.2}``.
* ``POST /moto-api/reset`` keeps STS sessions: credentials from AssumeRole go
  on acting in their account instead of silently falling back to moto's
  default account.

Usage: python3 xacctd_moto.py --host 127.0.0.1 --port 0
Prints ``XACCTD_MOTO_PORT=<port>`` on stdout once listening.
"""

import argparse
import json
import logging
import os
import re
import sys
import threading
import time
import urllib.parse

# Bucket policies must matter; one server serves many accounts.
os.environ["MOTO_S3_ALLOW_CROSSACCOUNT_ACCESS"] = "false"
os.environ.pop("MOTO_ACCOUNT_ID", None)
# Requests reach us as http://127.0.0.1:PORT/bucket/key (path style only).
os.environ.setdefault("S3_IGNORE_SUBDOMAIN_BUCKETNAME", "true")

from werkzeug.serving import make_server  # noqa: E402

from moto.iam.access_control import PermissionResult  # noqa: E402
from moto.iam.models import iam_backends  # noqa: E402
from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication,
    create_backend_app,
)
from moto.redshift.exceptions import (  # noqa: E402
    ClusterNotFoundError,
    InvalidParameterCombinationError,
    InvalidParameterValueError,
    RedshiftClientError,
)
from moto.redshift.models import Cluster, RedshiftBackend  # noqa: E402
from moto.redshift.responses import RedshiftResponse  # noqa: E402
from moto.core.responses import ActionResult  # noqa: E402
from moto.s3 import models as s3_models  # noqa: E402
from moto.s3.exceptions import S3AccessDeniedError  # noqa: E402

MAX_ROLES_PER_CLUSTER = 50

# Guards the extension's own state; moto itself is not concurrency-safe and
# the Go SDK may poll DescribeClusters while a modification is applied.
_lock = threading.RLock()
_config = {"role_delay_seconds": float(os.environ.get("XACCTD_MOTO_ROLE_DELAY", "2"))}
# (account, cluster, db_user as issued, password) -> expiry (epoch seconds)
_credentials: dict = {}
_request = threading.local()


# ---------------------------------------------------------------------------
# Redshift: cluster IAM roles
# ---------------------------------------------------------------------------


class InvalidClusterStateError(RedshiftClientError):
    def __init__(self, message: str):
        super().__init__("InvalidClusterState", message)


def _pending(cluster):
    # Per cluster: role ARN -> (status, time it completes). Lives on the
    # cluster object, so a moto reset drops it with the cluster.
    return cluster.__dict__.setdefault("_xacctd_pending", {})


def _settle(cluster):
    now = time.time()
    pending = _pending(cluster)
    for arn, (status, done_at) in list(pending.items()):
        if done_at <= now:
            del pending[arn]
            if status == "removing" and arn in cluster.iam_roles_arn:
                cluster.iam_roles_arn.remove(arn)
                if getattr(cluster, "default_iam_role_arn", None) == arn:
                    cluster.default_iam_role_arn = None


def _cluster_iam_roles(self):
    with _lock:
        _settle(self)
        pending = _pending(self)
        return [
            {"IamRoleArn": arn, "ApplyStatus": pending.get(arn, ("in-sync", 0))[0]}
            for arn in self.iam_roles_arn
        ]


Cluster.iam_roles = property(_cluster_iam_roles)
# Serialised as Cluster.DefaultIamRoleArn; absent until set.
Cluster.default_iam_role_arn = None


def _not_delegated(arn):
    # Redshift's wording for a role it cannot use (wrong account, missing role,
    # trust without redshift.amazonaws.com).
    return InvalidParameterValueError(
        f"The IAM role {arn} is not valid. The IAM role must delegate access to "
        "an Amazon Redshift account."
    )


def _as_list(v):
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def _load_policy(doc):
    if isinstance(doc, dict):
        return doc
    try:
        return json.loads(doc)
    except (TypeError, ValueError):
        return json.loads(urllib.parse.unquote(doc))


def _trusts_redshift(role):
    try:
        policy = _load_policy(role.assume_role_policy_document)
    except (TypeError, ValueError):
        return False
    for st in _as_list(policy.get("Statement")):
        if st.get("Effect") != "Allow":
            continue
        actions = [a.lower() for a in _as_list(st.get("Action"))]
        if not any(a in ("sts:assumerole", "sts:*", "*") for a in actions):
            continue
        principal = st.get("Principal")
        if isinstance(principal, dict):
            services = _as_list(principal.get("Service"))
            if "redshift.amazonaws.com" in services:
                return True
    return False


def _check_role_for_cluster(backend, arn):
    m = re.match(r"^arn:aws[\w-]*:iam::(\d{12}):role/(.+)$", arn or "")
    if not m or m.group(1) != backend.account_id:
        raise _not_delegated(arn)
    try:
        role = iam_backends[backend.account_id]["aws"].get_role_by_arn(arn)
    except Exception:
        raise _not_delegated(arn)
    if not _trusts_redshift(role):
        raise _not_delegated(arn)


def modify_cluster_iam_roles(self, cluster_identifier, add, remove, default_arn):
    with _lock:
        if cluster_identifier not in self.clusters:
            raise ClusterNotFoundError(cluster_identifier)
        cluster = self.clusters[cluster_identifier]
        _settle(cluster)
        if _pending(cluster):
            raise InvalidClusterStateError(
                "There is an operation running on the Cluster. Please try to "
                "modify it later."
            )
        add, remove = list(dict.fromkeys(add)), list(dict.fromkeys(remove))
        both = set(add) & set(remove)
        if both:
            raise InvalidParameterCombinationError(
                f"The IAM role {sorted(both)[0]} cannot be added and removed in "
                "the same request."
            )
        for arn in remove:
            if arn not in cluster.iam_roles_arn:
                raise InvalidParameterValueError(
                    f"The IAM role {arn} is not associated to the cluster "
                    f"{cluster_identifier}."
                )
        for arn in add:
            if arn in cluster.iam_roles_arn:
                raise InvalidParameterValueError(
                    f"The IAM role {arn} is already associated with the cluster "
                    f"{cluster_identifier}."
                )
        if len(cluster.iam_roles_arn) + len(add) - len(remove) > MAX_ROLES_PER_CLUSTER:
            raise InvalidParameterValueError(
                f"A cluster can have at most {MAX_ROLES_PER_CLUSTER} IAM roles "
                f"associated with it; cluster {cluster_identifier} would have "
                f"{len(cluster.iam_roles_arn) + len(add) - len(remove)}."
            )
        for arn in add:
            _check_role_for_cluster(self, arn)
        if default_arn and default_arn not in cluster.iam_roles_arn + add:
            raise InvalidParameterValueError(
                f"The default IAM role {default_arn} must be associated with the "
                "cluster."
            )

        done_at = time.time() + _config["role_delay_seconds"]
        pending = _pending(cluster)
        for arn in add:
            cluster.iam_roles_arn.append(arn)
            pending[arn] = ("adding", done_at)
        for arn in remove:
            pending[arn] = ("removing", done_at)
        if default_arn:
            cluster.default_iam_role_arn = default_arn
        if _config["role_delay_seconds"] <= 0:
            _settle(cluster)
        return cluster


RedshiftBackend.modify_cluster_iam_roles = modify_cluster_iam_roles


def _response_modify_cluster_iam_roles(self):
    cluster = self.redshift_backend.modify_cluster_iam_roles(
        self._get_param("ClusterIdentifier"),
        self._get_param("AddIamRoles", []) or [],
        self._get_param("RemoveIamRoles", []) or [],
        self._get_param("DefaultIamRoleArn"),
    )
    return ActionResult({"Cluster": cluster})


RedshiftResponse.modify_cluster_iam_roles = _response_modify_cluster_iam_roles


# ---------------------------------------------------------------------------
# Redshift: temporary credentials
# ---------------------------------------------------------------------------

_orig_get_cluster_credentials = RedshiftBackend.get_cluster_credentials


def _get_cluster_credentials(self, cluster_identifier, db_user, auto_create, duration_seconds):
    creds = _orig_get_cluster_credentials(
        self, cluster_identifier, db_user, auto_create, duration_seconds
    )
    with _lock:
        _credentials[
            (self.account_id, cluster_identifier, creds["DbUser"], creds["DbPassword"])
        ] = creds["Expiration"].timestamp()
    return creds


RedshiftBackend.get_cluster_credentials = _get_cluster_credentials


def _verify_credentials(body):
    cluster, user, password = body.get("cluster"), body.get("user"), body.get("password")
    now = time.time()
    with _lock:
        for (_, c, u, p), expires in _credentials.items():
            if c == cluster and u == user and p == password and expires > now:
                return {"valid": True, "db_user": re.sub(r"^IAMA?:", "", u)}
    return {"valid": False}


# ---------------------------------------------------------------------------
# S3: bucket policy evaluation
# ---------------------------------------------------------------------------


def _wildcard(pattern, value, ignore_case=False):
    if ignore_case:
        pattern, value = pattern.lower(), value.lower()
    # fnmatch treats [] specially; IAM only knows * and ?.
    regex = "".join(
        ".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern
    )
    return re.fullmatch(regex, value, re.DOTALL) is not None


def _context_value(key, ctx):
    """Value of a condition key for this request; (known, value-or-None)."""
    k = key.lower()
    if k == "aws:securetransport":
        return True, "true" if ctx["secure"] else "false"
    if k == "s3:prefix":
        return True, ctx.get("prefix")
    if k == "s3:delimiter":
        return True, ctx.get("delimiter")
    if k == "aws:principalarn":
        return True, ctx.get("principal_arn")
    if k == "aws:principalaccount":
        return True, ctx.get("account")
    return False, None


_NEGATED = {"stringnotequals", "stringnotequalsignorecase", "stringnotlike", "arnnotequals", "arnnotlike"}


def _condition_holds(operator, key, expected, ctx):
    known, actual = _context_value(key, ctx)
    if not known:
        return True  # as stock moto: unknown condition keys do not restrict
    op = operator.split(":")[-1].lower()  # drop ForAnyValue:/ForAllValues:
    if_exists = op.endswith("ifexists")
    if if_exists:
        op = op[: -len("ifexists")]
    expected = [str(e).lower() if isinstance(e, bool) else str(e) for e in _as_list(expected)]
    if op == "null":
        want_null = expected[0].lower() == "true" if expected else True
        return (actual is None) == want_null
    if actual is None:
        return if_exists or op in _NEGATED
    if op == "bool":
        return actual.lower() in [e.lower() for e in expected]
    if op in ("stringequals", "arnequals"):
        return actual in expected
    if op == "stringnotequals" or op == "arnnotequals":
        return actual not in expected
    if op == "stringequalsignorecase":
        return actual.lower() in [e.lower() for e in expected]
    if op == "stringnotequalsignorecase":
        return actual.lower() not in [e.lower() for e in expected]
    if op in ("stringlike", "arnlike"):
        return any(_wildcard(e, actual) for e in expected)
    if op in ("stringnotlike", "arnnotlike"):
        return not any(_wildcard(e, actual) for e in expected)
    return True  # operators not modelled here do not restrict (as stock moto)


def _conditions_hold(statement, ctx):
    for operator, block in (statement.get("Condition") or {}).items():
        for key, expected in block.items():
            if not _condition_holds(operator, key, expected, ctx):
                return False
    return True


def _principal_matches(principal, ctx):
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    for p in _as_list(principal.get("AWS")):
        p = str(p)
        if p == "*":
            return True
        if ctx.get("account") and p in (ctx["account"], f"arn:aws:iam::{ctx['account']}:root"):
            return True
        if ctx.get("principal_arn") and p == ctx["principal_arn"]:
            return True
    return False


def _statement_applies(st, action, resource, ctx, with_principal):
    if with_principal:
        if "NotPrincipal" in st:
            if _principal_matches(st["NotPrincipal"], ctx):
                return False
        elif not _principal_matches(st.get("Principal"), ctx):
            return False
    if "NotAction" in st:
        if any(_wildcard(a, action, True) for a in _as_list(st["NotAction"])):
            return False
    elif not any(_wildcard(a, action, True) for a in _as_list(st.get("Action"))):
        return False
    if "NotResource" in st:
        if any(_wildcard(r, resource) for r in _as_list(st["NotResource"])):
            return False
    elif not any(_wildcard(r, resource) for r in _as_list(st.get("Resource"))):
        return False
    return _conditions_hold(st, ctx)


def _evaluate(docs, action, resource, ctx, with_principal):
    """'Deny', 'Allow' or None over a list of policy documents."""
    allowed = False
    for doc in docs:
        try:
            policy = _load_policy(doc)
        except (TypeError, ValueError):
            continue
        for st in _as_list(policy.get("Statement")):
            if _statement_applies(st, action, resource, ctx, with_principal):
                if st.get("Effect") == "Deny":
                    return "Deny"
                if st.get("Effect") == "Allow":
                    allowed = True
    return "Allow" if allowed else None


def _identity_policies(ctx):
    account, role_arn = ctx.get("account"), ctx.get("role_arn")
    if not account or not role_arn:
        return []
    try:
        role = iam_backends[account]["aws"].get_role_by_arn(role_arn)
    except Exception:
        return []
    docs = list(role.policies.values())
    for managed in role.managed_policies.values():
        for version in managed.versions:
            if version.is_default:
                docs.append(version.document)
    return docs


def _bucket_policy_docs(bucket):
    return [bucket.policy.decode()] if bucket.policy else []


def _decide(bucket, action, resource, ctx):
    """PermissionResult for ctx's caller on bucket: same account as moto
    (Deny wins, otherwise not restricted); cross-account needs Allow on both
    sides, as AWS does."""
    verdict = _evaluate(_bucket_policy_docs(bucket), action, resource, ctx, True)
    if verdict == "Deny":
        return PermissionResult.DENIED
    if ctx.get("account") == bucket.account_id:
        return PermissionResult.PERMITTED if verdict == "Allow" else PermissionResult.NEUTRAL
    identity = _evaluate(_identity_policies(ctx), action, resource, ctx, False)
    if identity == "Allow" and verdict == "Allow":
        return PermissionResult.PERMITTED
    return PermissionResult.DENIED


_orig_get_permission = s3_models.FakeBucket.get_permission


def _get_permission(self, action, resource):
    ctx = getattr(_request, "s3", None)
    if ctx is None:
        return _orig_get_permission(self, action, resource)
    result = _decide(self, action, resource, ctx)
    if result == PermissionResult.DENIED and not ctx.get("multi_delete"):
        # Stock moto answers a bare 403 without a body; S3 sends AccessDenied.
        raise S3AccessDeniedError()
    return result


s3_models.FakeBucket.get_permission = _get_permission

_orig_get_bucket = s3_models.S3Backend.get_bucket


def _get_bucket(self, bucket_name):
    if (
        bucket_name in self.buckets
        or bucket_name in self.table_buckets
        or bucket_name not in s3_models.s3_backends.bucket_accounts
    ):
        return _orig_get_bucket(self, bucket_name)
    ctx = getattr(_request, "s3", None)
    if ctx is None or not ctx.get("action"):
        return _orig_get_bucket(self, bucket_name)  # moto's own rule: denied
    partition, owner = s3_models.s3_backends.bucket_accounts[bucket_name]
    bucket = s3_models.s3_backends[owner][partition].get_bucket(bucket_name)
    if ctx.get("multi_delete"):
        return bucket  # DeleteObjects: moto asks get_permission per key
    resource = f"arn:aws:s3:::{bucket_name}"
    if ctx.get("key"):
        resource += "/" + ctx["key"]
    if _decide(bucket, ctx["action"], resource, ctx) == PermissionResult.PERMITTED:
        return bucket
    raise S3AccessDeniedError()


s3_models.S3Backend.get_bucket = _get_bucket

_BUCKET_GET = {
    "location": "s3:GetBucketLocation",
    "policy": "s3:GetBucketPolicy",
    "versions": "s3:ListBucketVersions",
    "uploads": "s3:ListBucketMultipartUploads",
    "acl": "s3:GetBucketAcl",
    "tagging": "s3:GetBucketTagging",
    "encryption": "s3:GetEncryptionConfiguration",
    "ownershipControls": "s3:GetBucketOwnershipControls",
    "publicAccessBlock": "s3:GetBucketPublicAccessBlock",
    "versioning": "s3:GetBucketVersioning",
    "lifecycle": "s3:GetLifecycleConfiguration",
    "cors": "s3:GetBucketCORS",
}
_BUCKET_PUT = {
    "policy": "s3:PutBucketPolicy",
    "tagging": "s3:PutBucketTagging",
    "acl": "s3:PutBucketAcl",
    "encryption": "s3:PutEncryptionConfiguration",
    "ownershipControls": "s3:PutBucketOwnershipControls",
    "publicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "versioning": "s3:PutBucketVersioning",
    "lifecycle": "s3:PutLifecycleConfiguration",
    "cors": "s3:PutBucketCORS",
}
_BUCKET_DELETE = {
    "policy": "s3:DeleteBucketPolicy",
    "tagging": "s3:PutBucketTagging",
    "encryption": "s3:PutEncryptionConfiguration",
    "ownershipControls": "s3:PutBucketOwnershipControls",
    "publicAccessBlock": "s3:PutBucketPublicAccessBlock",
}


def _s3_action(method, key, query):
    def sub(table, default):
        for name, action in table.items():
            if name in query:
                return action
        return default

    if key:
        if method in ("GET", "HEAD"):
            return sub({"tagging": "s3:GetObjectTagging", "acl": "s3:GetObjectAcl",
                        "uploadId": "s3:ListMultipartUploadParts"}, "s3:GetObject")
        if method == "PUT":
            return sub({"tagging": "s3:PutObjectTagging", "acl": "s3:PutObjectAcl"}, "s3:PutObject")
        if method == "DELETE":
            return sub({"tagging": "s3:DeleteObjectTagging", "uploadId": "s3:AbortMultipartUpload"},
                       "s3:DeleteObject")
        if method == "POST":
            return sub({"select": "s3:GetObject"}, "s3:PutObject")
        return None
    if method in ("GET", "HEAD"):
        return sub(_BUCKET_GET, "s3:ListBucket") if method == "GET" else "s3:ListBucket"
    if method == "PUT":
        return sub(_BUCKET_PUT, "s3:CreateBucket")
    if method == "DELETE":
        return sub(_BUCKET_DELETE, "s3:DeleteBucket")
    if method == "POST" and "delete" in query:
        return "s3:DeleteObject"
    return None


_ACCESS_KEY = re.compile(r"Credential=([A-Z0-9]{16,128})/[^/]+/[^/]+/([^/]+)/")


def _caller(access_key):
    """(account, role ARN or None, principal ARN) for an access key."""
    for account_id, account in list(iam_backends.items()):
        backend = account["aws"]
        key = backend.access_keys.get(access_key)
        if key is not None:
            role_arn = getattr(key, "role_arn", None)
            if role_arn:
                return account_id, role_arn, role_arn
            user = getattr(key, "user_name", None) or "unknown"
            return account_id, None, f"arn:aws:iam::{account_id}:user/{user}"
    from moto.core import DEFAULT_ACCOUNT_ID

    return DEFAULT_ACCOUNT_ID, None, f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:root"


def _s3_context(environ):
    auth = environ.get("HTTP_AUTHORIZATION", "")
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    m = _ACCESS_KEY.search(auth)
    if m:
        access_key, service = m.group(1), m.group(2)
    elif "X-Amz-Credential" in query:
        parts = query["X-Amz-Credential"][0].split("/")
        access_key, service = parts[0], parts[3] if len(parts) > 3 else "s3"
    else:
        return None  # unsigned: moto treats it as S3 with its own rules
    if service != "s3":
        return None
    if "HTTP_X_MOTO_ACCOUNT_ID" in environ:
        account, role_arn = environ["HTTP_X_MOTO_ACCOUNT_ID"], None
        principal = f"arn:aws:iam::{account}:root"
    else:
        account, role_arn, principal = _caller(access_key)
    path = environ.get("PATH_INFO", "")
    if isinstance(path, bytes):
        path = path.decode("utf-8")
    bucket, _, key = path.lstrip("/").partition("/")
    if not bucket:
        return None
    method = environ.get("REQUEST_METHOD", "GET").upper()
    insecure = environ.get("HTTP_X_XACCTD_SANDBOX_INSECURE", "").strip().lower() == "true"
    return {
        "secure": not insecure,
        "account": account,
        "role_arn": role_arn,
        "principal_arn": principal,
        "bucket": bucket,
        "key": key,
        "action": _s3_action(method, key, query),
        "multi_delete": method == "POST" and not key and "delete" in query,
        "prefix": query.get("prefix", [None])[0],
        "delimiter": query.get("delimiter", [None])[0],
    }


# ---------------------------------------------------------------------------
# WSGI front: sandbox endpoints and per-request S3 context
# ---------------------------------------------------------------------------


def _json_response(start_response, status, body):
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def _read_json(environ):
    try:
        size = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        size = 0
    raw = environ["wsgi.input"].read(size) if size else b""
    return json.loads(raw or b"{}")


class SandboxApp:
    def __init__(self, inner):
        self.inner = inner

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if path.startswith("/xacctd-sandbox/"):
            return self.sandbox(path, method, environ, start_response)
        if path.rstrip("/") == "/moto-api/reset" and method == "POST":
            with _lock:
                _credentials.clear()
                sessions = _snapshot_sessions()
                result = self.inner(environ, start_response)
                _restore_sessions(sessions)
                return result
        try:
            _request.s3 = _s3_context(environ)
        except Exception as err:  # never let the extension break moto's routing
            print(f"xacctd_moto: s3 context: {err!r}", file=sys.stderr)
            _request.s3 = None
        try:
            return self.inner(environ, start_response)
        finally:
            _request.s3 = None

    def sandbox(self, path, method, environ, start_response):
        try:
            if path == "/xacctd-sandbox/config":
                if method == "POST":
                    body = _read_json(environ)
                    if "role_delay_seconds" in body:
                        delay = float(body["role_delay_seconds"])
                        if delay < 0:
                            raise ValueError("role_delay_seconds must be >= 0")
                        with _lock:
                            _config["role_delay_seconds"] = delay
                return _json_response(start_response, "200 OK", dict(_config))
            if path == "/xacctd-sandbox/verify-cluster-credentials" and method == "POST":
                return _json_response(start_response, "200 OK", _verify_credentials(_read_json(environ)))
        except (ValueError, TypeError) as err:
            return _json_response(start_response, "400 Bad Request", {"error": str(err)})
        return _json_response(start_response, "404 Not Found", {"error": f"no such endpoint: {method} {path}"})


def _snapshot_sessions():
    """STS sessions (assumed-role access keys) of every account."""
    from moto.sts.models import sts_backends

    saved = []
    for account_id in list(iam_backends.keys()):
        keys = {
            k: v
            for k, v in iam_backends[account_id]["aws"].access_keys.items()
            if getattr(v, "role_arn", None)
        }
        roles = list(sts_backends[account_id]["aws"].assumed_roles)
        if keys or roles:
            saved.append((account_id, keys, roles))
    return saved


def _restore_sessions(saved):
    # A reset would otherwise turn every live session into an unknown key,
    # which moto silently maps to its default account: clients holding
    # credentials (the Redshift stand-in, a running xacctd) would act in the
    # wrong account without any error. Sessions survive; resources do not.
    from moto.sts.models import sts_backends

    for account_id, keys, roles in saved:
        iam_backends[account_id]["aws"].access_keys.update(keys)
        sts_backends[account_id]["aws"].assumed_roles.extend(roles)


def _watch_parent(pid):
    # The Go side owns this process; if it dies without stopping us (kill -9,
    # crashed test binary), exit instead of lingering.
    while True:
        time.sleep(0.5)
        if os.getppid() != pid:
            os._exit(0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)

    if not os.environ.get("XACCTD_MOTO_VERBOSE"):
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    parent = os.environ.get("XACCTD_MOTO_PARENT_PID")
    if parent:
        threading.Thread(target=_watch_parent, args=(int(parent),), daemon=True).start()

    app = SandboxApp(DomainDispatcherApplication(create_backend_app))
    server = make_server(args.host, args.port, app, threaded=True)
    os.environ["MOTO_PORT"] = str(server.server_port)  # moto calls itself back here
    print(f"XACCTD_MOTO_PORT={server.server_port}", flush=True)

    import signal

    def stop(signum, frame):
        # All state is in memory and disposable: skip the orderly shutdown
        # (serve_forever polls every 0.5 s, interpreter teardown of moto
        # takes longer still).
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever()


if __name__ == "__main__":
    main()
