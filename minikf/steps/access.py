"""Check token isolation on served endpoints: for each target path ("/p" for GET, or
"POST /p"), a request without a token is refused (401; Jupyter answers 403), another user's
token gets 403, and the owner's token gets through (200 on a GET). Tokens come in args (from
${secrets...}) or token files; never in outputs or the log. Any check that fails fails the
step, naming the endpoint and what it answered."""

from __future__ import annotations

from pathlib import Path

import requests

from minikf.runtime.errors import StepFailed
from minikf.steps.base import StepContext, StepKind, StepOutcome


def _status(method: str, url: str, token: str | None) -> int | str:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    body = {} if method != "GET" else None  # an empty JSON object: past auth it is a 4xx
    try:
        return requests.request(method, url, headers=headers, json=body, timeout=10,
                                allow_redirects=False).status_code
    except requests.RequestException as exc:
        return type(exc).__name__


def _token(ctx: StepContext, target: dict, i: int, prefix: str = "") -> str | None:
    """`<prefix>token` or the contents of `<prefix>token_file`; None when neither is given."""
    if f"{prefix}token" in target:
        return str(target[f"{prefix}token"])
    if f"{prefix}token_file" in target:
        path = Path(str(target[f"{prefix}token_file"]))
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise StepFailed(f"step {ctx.name!r}: args.targets[{i}].{prefix}token_file: "
                             f"cannot read {path}: {exc}") from None
    return None


def check_target(base: str, path: str, owner: str, other: str, without: list[int]) -> dict:
    """`path` is "/p" (GET) or "METHOD /p". The owner gets 200 on a GET; on another method any
    answer but 401/403 or a 5xx (an empty body may well be a 400: it got past the token)."""
    method, _, rest = path.partition(" ") if " " in path else ("GET", "", path)
    url = base.rstrip("/") + rest.strip()
    row = {"url": url, "method": method.upper(), "no_token": _status(method, url, None),
           "other_user": _status(method, url, other), "owner": _status(method, url, owner)}
    owner_ok = (row["owner"] == 200 if row["method"] == "GET" else
                isinstance(row["owner"], int) and row["owner"] not in (401, 403)
                and row["owner"] < 500)
    row["owner_ok"] = owner_ok
    row["ok"] = row["no_token"] in without and row["other_user"] == 403 and owner_ok
    return row


def run(ctx: StepContext) -> StepOutcome:
    other = str(ctx.arg("other_token", kind=str))
    rows = []
    for i, target in enumerate(ctx.arg("targets", kind=list)):
        if not isinstance(target, dict) or "url" not in target or "paths" not in target:
            raise StepFailed(f"step {ctx.name!r}: args.targets[{i}] needs url and paths")
        owner = _token(ctx, target, i)
        if owner is None:
            raise StepFailed(f"step {ctx.name!r}: args.targets[{i}] needs token or token_file")
        target_other = _token(ctx, target, i, "other_") or other
        without = [int(s) for s in target.get("refuse_without_token", [401])]
        for path in target["paths"]:
            row = check_target(str(target["url"]), str(path), owner, target_other, without)
            rows.append({"target": target.get("name", str(i)), **row})
    with ctx.open_log() as log:
        for row in rows:
            log.write(f"{row['target']} {row['method']} {row['url']}: without token {row['no_token']}, other "
                      f"user {row['other_user']}, owner {row['owner']}, ok={row['ok']}\n")
    metrics = {
        "checks": len(rows),
        "refused_without_token": sum(1 for r in rows if r["no_token"] in (401, 403)),
        "refused_other_user": sum(1 for r in rows if r["other_user"] == 403),
        "allowed_owner": sum(1 for r in rows if r["owner_ok"]),
        "errors": sum(1 for r in rows if not r["ok"]),
    }
    failed = [r for r in rows if not r["ok"]]
    if failed:
        lines = [f"{r['target']} {r['method']} {r['url']}: without token {r['no_token']}, other "
                 f"user {r['other_user']} (want 403), owner {r['owner']}" for r in failed[:5]]
        raise StepFailed(f"step {ctx.name!r}: {len(failed)} of {len(rows)} access checks failed:\n"
                         + "\n".join(lines))
    return StepOutcome(metrics=metrics, outputs={"checks": rows})


OUTPUTS = ("checks", "refused_without_token", "refused_other_user", "allowed_owner", "errors")

KIND = StepKind("access", run, outputs=OUTPUTS)
