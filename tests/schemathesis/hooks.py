"""Schemathesis hooks of hallctl's generated API battery (run by tests/api_battery.rs).

No state change on refusal: before every call the ledger's head (last sequence number and chain
link, `GET /ledger/head`) is read with a token that may read it; after the answer it is read
again. A refusal (any 4xx) must leave it as it was: every state change of the hall is a ledger
record, so an unchanged head means nothing was recorded. The one refusal that writes is the
lockout after repeated wrong PINs (423 `locked`): the lock must survive a restart, so it is
recorded, by design. And a refusal of a custody, separation or gating rule (its error body
names the `rule`) is itself a fact: exactly two records, `refused` and its alert, and nothing
else.

The run must be single-worker (`--workers 1`): the head is read around each call, and a
concurrent call would make a refusal look like a change.

Environment (set by the Rust test):
  HALLCTL_BATTERY_API        the API's base URL (`http://127.0.0.1:PORT/api/v1`)
  HALLCTL_BATTERY_HEAD_TOKEN a token that may read `/ledger/head` (an auditor's, used by no run:
                             `DELETE /session` signs a run's own token out)
  HALLCTL_BATTERY_KNOWN      a JSON file of ids that exist in the hall, to mix into path ids
  HALLCTL_BATTERY_STATS      where to write the number of calls and refusals checked
  HALLCTL_BATTERY_PROTECT    user ids the run must not disable or re-PIN (the accounts whose
                             tokens the battery uses): such ids become a spare account's
"""

import atexit
import json
import os
import urllib.error
import urllib.request

import schemathesis
from hypothesis import strategies as st

API = os.environ["HALLCTL_BATTERY_API"].rstrip("/")
HEAD_TOKEN = os.environ["HALLCTL_BATTERY_HEAD_TOKEN"]
KNOWN_FILE = os.environ.get("HALLCTL_BATTERY_KNOWN")
KNOWN = json.load(open(KNOWN_FILE)) if KNOWN_FILE else {}
STATS_FILE = os.environ.get("HALLCTL_BATTERY_STATS")

PROTECT = {u for u in os.environ.get("HALLCTL_BATTERY_PROTECT", "").split(",") if u}
SPARE_USERS = KNOWN.get("/users/", [])

_stats = {"calls": 0, "refusals": 0, "by_status": {}}
_heads = {}


def ledger_head():
    req = urllib.request.Request(
        API + "/ledger/head", headers={"Authorization": "Bearer " + HEAD_TOKEN}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            v = json.load(r)
    except urllib.error.HTTPError as e:
        raise RuntimeError(
            f"the ledger head could not be read ({e.code}): was the battery's own token signed out?"
        ) from None
    return (v["seq"], v["link"])


@atexit.register
def _write_stats():
    if STATS_FILE:
        with open(STATS_FILE, "w") as f:
            json.dump(_stats, f)


@schemathesis.hook
def before_call(ctx, case, kwargs):
    # Keep the battery's own accounts out of its reach (it would sign itself out).
    params = case.path_parameters
    if case.path.startswith("/users/") and params and SPARE_USERS:
        if str(params.get("id", "")).strip().upper() in PROTECT:
            params["id"] = SPARE_USERS[0]
    _heads[id(case)] = [ledger_head(), None]


@schemathesis.hook
def after_call(ctx, case, response):
    entry = _heads.get(id(case))
    if entry is not None:
        entry[1] = ledger_head()
    _stats["calls"] += 1
    code = str(response.status_code)
    _stats["by_status"][code] = _stats["by_status"].get(code, 0) + 1
    if 400 <= response.status_code < 500:
        _stats["refusals"] += 1


def _error_code(response):
    try:
        return response.json()["error"]["code"]
    except Exception:
        return None


def _error_rule(response):
    try:
        return response.json()["error"].get("rule")
    except Exception:
        return None


@schemathesis.check
def no_state_change_on_refusal(ctx, response, case):
    """A 4xx answer leaves the ledger's head where it was (a 423 lockout aside)."""
    if not 400 <= response.status_code < 500:
        return None
    entry = _heads.get(id(case))
    if entry is None or entry[1] is None:
        raise AssertionError("the ledger head was not read around this call")
    before, after = entry
    if before == after:
        return None
    if response.status_code == 423 and _error_code(response) == "locked":
        return None
    if _error_rule(response) is not None and after[0] == before[0] + 2:
        # The refusal's own fact and alert (checked record by record in tests/bad_input.rs).
        return None
    raise AssertionError(
        f"refused with {response.status_code} but the ledger moved from record {before[0]} to "
        f"{after[0]}: a refusal must change nothing"
    )


@schemathesis.check
def one_error_body(ctx, response, case):
    """Every 4xx and 5xx answer of the API is `{"error": {"code", "message", ...}}`."""
    if response.status_code < 400:
        return None
    try:
        e = response.json()["error"]
        ok = isinstance(e["code"], str) and e["code"] and isinstance(e["message"], str) and e["message"]
    except Exception:
        ok = False
    if not ok:
        raise AssertionError(f"a {response.status_code} without the one error body: {response.text[:200]!r}")
    return None


@schemathesis.hook
def flatmap_path_parameters(ctx, path_parameters):
    """Mixes ids that exist in the hall into the generated ones, so that calls reach past the
    lookup (a valid id with a bad body, a wrong role on a real object)."""
    if not path_parameters or not KNOWN:
        return st.just(path_parameters)
    path = ctx.operation.path
    for prefix, ids in KNOWN.items():
        if path.startswith(prefix) and ids:
            key = "serial" if "serial" in path_parameters else "id"
            if key in path_parameters:
                return st.one_of(
                    st.just(path_parameters),
                    st.sampled_from(ids).map(lambda v, k=key: {**path_parameters, k: v}),
                )
    return st.just(path_parameters)
