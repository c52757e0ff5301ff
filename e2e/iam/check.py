#!/usr/bin/env python3
"""The IAM policies in docs/ grant exactly what the code calls, run by e2e/test.sh.

For each identity (the operator, the tenants' backup pods, the media nodes), the AWS SDK
calls its code makes are found in the source: every `.operation()` of the S3 and KMS
clients, whose operation names come from the SDK crates in Cargo.lock (their
`src/operation/` directories), in the files that identity runs, plus the calls inside
each `sanctum_cloud` helper those files use. Each call maps to the IAM actions AWS checks
for it (OPERATION_ACTIONS, VERSIONED, VIA_S3 and IMPLIED below, from the S3 and KMS
authorization references). Actions are checked, not resources: which bucket a
statement names is reviewed with docs/iam.md. The
policy's `Allow` statements must grant every one of them, and nothing else.

Prints every missing and every unused action with the calls that need it, and exits 1 if
there is any. Usage: check.py [ROOT]
"""

import glob
import importlib.util
import json
import os
import re
import sys

_spec = importlib.util.spec_from_file_location(
    "layering", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "layering", "check.py")
)
layering = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(layering)

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", ".."))

# Which code runs as which identity. Directories include everything under them except the
# files listed in "except"; `sanctum restore` and `sanctum-media-node decrypt` are run by
# people under their own credentials (docs/iam.md), not by any of these identities.
IDENTITIES = {
    "operator": {
        "policy": "docs/iam-policy.json",
        "code": ["operator/src", "operator/audit/src"],
        "except": ["operator/src/backup", "operator/src/cli/backup.rs", "operator/src/evidence", "operator/src/cli/plugin.rs"],
    },
    # `kubectl sanctum evidence`, `status` and `verify-audit`, under an auditor's role
    # (docs/iam.md); `restore-drill` writes a scratch bucket and runs under its holder's.
    "auditor": {
        "policy": "docs/iam-auditor-policy.json",
        "code": [
            "operator/src/evidence",
            "operator/src/cloud/buckets/posture.rs",
            "operator/src/cloud/keys.rs#key_tag",
            "operator/audit/src/check.rs",
            "operator/audit/src/store.rs#keys,read,chain,nodes,deleted,overwritten",
            "operator/src/cli/plugin.rs#plugin,status",
        ],
        "except": [],
    },
    "backup": {
        "policy": "docs/iam-backup-policy.json",
        "code": ["operator/src/backup", "operator/src/cli/backup.rs#backup,run_backup", "operator/audit/src", "operator/src/cloud/buckets/posture.rs#read_object_lock"],
        "except": ["operator/src/backup/restore.rs", "operator/src/backup/drill.rs"],
    },
    # The drill CronJob (`spec.backup.restoreDrill`): reads one tenant's backups, restores
    # them into a scratch bucket it creates and removes, and unwraps the sample's key.
    "restore drill": {
        "policy": "docs/iam-restore-drill-policy.json",
        "code": [
            "operator/src/backup/drill.rs",
            "operator/src/backup/restore.rs",
            "operator/src/cli/backup.rs#restore_drill,run_drill",
        ],
        "except": [],
    },
    "media node": {
        "policy": "docs/iam-media-node-policy.json",
        "code": ["media-node/src", "operator/audit/src"],
        "except": ["media-node/src/decrypt.rs"],
    },
}

# SDK operation -> IAM actions, where the action is not the operation's own name. S3
# authorizes several operations under another action (HeadObject is GetObject, the
# multipart upload calls are PutObject, ...); a call that names a version needs the
# `...Version` action as well (the helpers below do).
OPERATION_ACTIONS = {
    "s3:HeadBucket": ["s3:ListBucket"],
    "s3:HeadObject": ["s3:GetObject"],
    "s3:ListObjectsV2": ["s3:ListBucket"],
    "s3:ListBuckets": ["s3:ListAllMyBuckets"],
    "s3:ListObjectVersions": ["s3:ListBucketVersions"],
    "s3:ListMultipartUploads": ["s3:ListBucketMultipartUploads"],
    "s3:CreateMultipartUpload": ["s3:PutObject"],
    "s3:UploadPart": ["s3:PutObject"],
    "s3:CompleteMultipartUpload": ["s3:PutObject"],
    "s3:CopyObject": ["s3:GetObject", "s3:PutObject"],
    "s3:DeleteObjects": ["s3:DeleteObject"],
    "s3:GetBucketEncryption": ["s3:GetEncryptionConfiguration"],
    "s3:PutBucketEncryption": ["s3:PutEncryptionConfiguration"],
    "s3:GetBucketLifecycleConfiguration": ["s3:GetLifecycleConfiguration"],
    "s3:PutBucketLifecycleConfiguration": ["s3:PutLifecycleConfiguration"],
    "s3:GetObjectLockConfiguration": ["s3:GetBucketObjectLockConfiguration"],
    "s3:PutObjectLockConfiguration": ["s3:PutBucketObjectLockConfiguration"],
    "s3:GetPublicAccessBlock": ["s3:GetBucketPublicAccessBlock"],
    "s3:PutPublicAccessBlock": ["s3:PutBucketPublicAccessBlock"],
}
# Calls whose requests name object versions (`.version_id(` in the same function): S3 then
# checks the `...Version` action.
VERSIONED = {
    "s3:GetObject": "s3:GetObjectVersion",
    "s3:DeleteObject": "s3:DeleteObjectVersion",
    "s3:CopyObject": "s3:GetObjectVersion",
}
# Actions a call needs beyond its own, and why.
IMPLIED = {
    # HeadObject returns an object's retention only to a caller that may read it; the
    # audit store reads it to check a batch is locked.
    ("s3:HeadObject", "object_lock_retain_until_date"): ["s3:GetObjectRetention"],
}


# What S3 itself asks KMS for on the caller's behalf when the object is encrypted with a
# KMS key (the recordings buckets are): reading decrypts, a multipart upload generates the
# data key and decrypts it for each part. Granted with `kms:ViaService` = S3 only.
VIA_S3 = {
    "s3:GetObject": ["kms:Decrypt"],
    "s3:CopyObject": ["kms:Decrypt"],
    "s3:CreateMultipartUpload": ["kms:GenerateDataKey"],
    "s3:UploadPart": ["kms:Decrypt"],
}


def sdk_operations():
    """{snake_case operation: 's3:Camel' or 'kms:Camel'} from the SDK crates in Cargo.lock."""
    lock = open(os.path.join(ROOT, "Cargo.lock")).read()
    home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    out = {}
    for crate, service in (("aws-sdk-s3", "s3"), ("aws-sdk-kms", "kms")):
        m = re.search(r'name = "%s"\nversion = "([^"]+)"' % crate, lock)
        if not m:
            sys.exit(f"error: {crate} is not in Cargo.lock")
        dirs = glob.glob(os.path.join(home, "registry", "src", "*", f"{crate}-{m.group(1)}", "src", "operation"))
        if not dirs:
            sys.exit(f"error: the source of {crate} {m.group(1)} is not in {home}/registry (run cargo fetch)")
        for name in os.listdir(dirs[0]):
            if os.path.isdir(os.path.join(dirs[0], name)):
                camel = "".join(p[:1].upper() + p[1:] for p in name.split("_"))
                out[name] = f"{service}:{camel}"
    return out


def strip(text):
    """Without comments and `#[cfg(test)] mod ... { }` blocks (as the layering check reads code)."""
    return layering.test_free(layering.strip_comments(text))


def functions(text):
    """(name, body) of every top-level `fn` of a file."""
    starts = [(m.start(), m.group(1)) for m in re.finditer(r"^(?:pub(?:\([^)]*\))? )?(?:async )?fn (\w+)", text, re.M)]
    for k, (start, name) in enumerate(starts):
        end = starts[k + 1][0] if k + 1 < len(starts) else len(text)
        yield name, text[start:end]


def actions_of(text, ops):
    """{IAM action: {operation}} for the SDK calls in `text` (one function or file)."""
    found = {}
    for call in re.findall(r"\.\s*(\w+)\s*\(\s*\)", text):
        if call not in ops:
            continue
        op = ops[call]
        acts = list(OPERATION_ACTIONS.get(op, [op]))
        if re.search(r"\.(?:set_)?version_id\(\s*[^)\s]", text):
            acts += [VERSIONED[a] for a in [op] + acts if a in VERSIONED]
        acts += VIA_S3.get(op, [])
        for (implied_op, marker), extra in IMPLIED.items():
            if op == implied_op and marker in text:
                acts += extra
        for a in acts:
            found.setdefault(a, set()).add(op)
    return found


def merge(into, more, where):
    for action, why in more.items():
        into.setdefault(action, set()).update(f"{w} ({where})" for w in why)


def rust_files(paths, excluded):
    """(file, functions or None) of the code; `path#f,g` takes only those functions."""
    for p in paths:
        p, _, only = p.partition("#")
        if only:
            yield p, only.split(",")
            continue
        full = os.path.join(ROOT, p)
        walk = [(os.path.dirname(full), [], [os.path.basename(full)])] if os.path.isfile(full) else os.walk(full)
        for dirpath, dirnames, filenames in walk:
            dirnames[:] = [d for d in dirnames if d not in ("tests", "target")]
            for f in filenames:
                path = os.path.join(dirpath, f)
                rel = os.path.relpath(path, ROOT)
                if f.endswith(".rs") and not any(rel == e or rel.startswith(e + "/") for e in excluded):
                    yield rel, None


def only_functions(text, names, rel):
    """The bodies of the functions (methods included) `names` of a file."""
    starts = [(m.start(), m.group(1)) for m in re.finditer(r"^\s*(?:pub(?:\([^)]*\))? )?(?:async )?fn (\w+)", text, re.M)]
    bodies = {}
    for k, (start, name) in enumerate(starts):
        end = starts[k + 1][0] if k + 1 < len(starts) else len(text)
        bodies[name] = text[start:end]
    missing = [n for n in names if n not in bodies]
    if missing:
        sys.exit(f"error: {rel} has no function {', '.join(missing)}")
    # The file's `use` items too, so a helper imported by name is still found.
    uses = re.findall(r"^use [^;]*;", text, re.M)
    return "\n".join(uses + [bodies[n] for n in names])


def helpers(ops):
    """{(module, fn): {action: {operation}}} of the sanctum_cloud helpers."""
    out = {}
    for module in ("objects", "kms"):
        text = strip(open(os.path.join(ROOT, "operator", "cloud", "src", f"{module}.rs")).read())
        for name, body in functions(text):
            acts = actions_of(body, ops)
            if acts:
                out[(module, name)] = acts
    return out


def uses_helper(text, module, name):
    if re.search(rf"\b{module}::{name}\s*\(", text):
        return True
    imported = re.search(rf"use sanctum_cloud::{module}::\{{([^}}]*)\}}", text)
    return bool(imported and re.search(rf"\b{name}\b", imported.group(1)) and re.search(rf"(?<![.:\w]){name}\s*\(", text))


def granted(policy):
    out = set()
    for s in json.load(open(os.path.join(ROOT, policy)))["Statement"]:
        if s["Effect"] != "Allow":
            continue
        acts = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        out.update(acts)
    return out


def main():
    ops = sdk_operations()
    cloud = helpers(ops)
    failed = False
    for identity, spec in IDENTITIES.items():
        needed = {}
        for rel, only in rust_files(spec["code"], spec["except"]):
            text = strip(open(os.path.join(ROOT, rel)).read())
            if only:
                text = only_functions(text, only, rel)
                rel = f"{rel} ({', '.join(only)})"
            merge(needed, actions_of(text, ops), rel)
            for (module, name), acts in cloud.items():
                if uses_helper(text, module, name):
                    merge(needed, acts, f"{module}::{name} from {rel}")
        allowed = granted(spec["policy"])
        missing = sorted(set(needed) - allowed)
        unused = sorted(allowed - set(needed))
        for a in missing:
            print(f"{identity}: {spec['policy']} does not grant {a}, which {', '.join(sorted(needed[a]))} needs")
        for a in unused:
            print(f"{identity}: {spec['policy']} grants {a}, which no call of its code needs")
        if missing or unused:
            failed = True
        else:
            print(f"{identity}: {spec['policy']} grants exactly the {len(needed)} actions its code calls")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
