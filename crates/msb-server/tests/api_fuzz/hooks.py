"""Schemathesis hooks for run.sh: keep the fuzzed API on this machine and off its files,
aim some requests at a live sandbox, and accept the one server error that is expected.

A create may name any host directory as `rootfs` (its patches are applied to it) and any
image (pulled from any registry): both are pinned here, so generated requests neither write
outside the temporary home nor reach the network (run.sh also runs in private namespaces).
"""

import os
import random

import schemathesis

ROOTFS = os.environ["MSB_FUZZ_ROOTFS"]
# A running sandbox to aim at (run.sh with MSB_FUZZ_VM=1), else none.
LIVE = os.environ.get("MSB_FUZZ_LIVE", "")
# Operations aimed at the live sandbox: the ones that use it without stopping or emptying it.
AIMED = ("/exec", "/exec/stream", "/files", "/fs/list", "/fs/stat", "/fs/mkdir", "/metrics", "/logs", "/attach")
# 500s that are the host's configuration, not a handler's fault.
EXPECTED = ("guest kernel not found",)

CHOICE = random.Random(int(os.environ.get("SEED", "1")))
# Creates that named a root so far (every other one gets a missing root).
CREATES = [0]


@schemathesis.hook
def before_call(context, case, kwargs):
    """Pins creates to the fixture root or a missing one (only that with a live VM: no more
    VMs), drops images and mounts, aims most uses of a sandbox at the live one (and the rest
    away from it), and never follows a log."""
    op = case.operation
    if op.method.upper() == "POST" and op.path == "/v1/sandboxes" and isinstance(case.body, dict):
        case.body.pop("image", None)
        case.body.pop("mounts", None)
        if "rootfs" in case.body:
            CREATES[0] += 1
            present = not LIVE and CREATES[0] % 2 == 1
            case.body["rootfs"] = ROOTFS if present else ROOTFS + "-absent"
    aimed = op.path.startswith("/v1/sandboxes/{name}/") and op.path.endswith(AIMED)
    names = case.path_parameters
    if LIVE and names is not None and op.path.startswith("/v1/sandboxes/{name}"):
        if aimed and CHOICE.random() < 0.8:
            names["name"] = LIVE
        elif not aimed and names.get("name") == LIVE:
            # Learnt from a list answer: it would be stopped or removed.
            names["name"] = "not-" + LIVE
    if op.path.endswith("/logs") and isinstance(case.query, dict):
        case.query["follow"] = "false"


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Drops the expected configuration errors (reported by run.sh from the server's log)."""
    return not any(text in (response.text or "") for text in EXPECTED)
