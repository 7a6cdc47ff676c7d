"""Run a scenario as a user (quota-checked, results in the user's runs dir).

With `expect_refusal: true` the step passes only when the quota refuses the run, and reports
the message the user would see. `hold_slots: N` first takes N of the user's run slots, the
same way N live runs would, to check the concurrent-runs quota.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from minikf.profiles.quota import QuotaExceeded, run_slot
from minikf.profiles.runs import run_as
from minikf.profiles.store import load_profile
from minikf.runtime.errors import StepFailed
from minikf.scenario import load_scenario
from minikf.steps.base import StepContext, StepKind, StepOutcome


def run(ctx: StepContext) -> StepOutcome:
    profile = load_profile(str(ctx.arg("user", kind=str)), Path(str(ctx.arg("home", kind=str))))
    scenario = load_scenario(Path(str(ctx.arg("scenario", kind=str))))
    params = dict(ctx.arg("params", {}, dict))
    expect_refusal = bool(ctx.arg("expect_refusal", False, bool))
    with ExitStack() as held:
        for i in range(int(ctx.arg("hold_slots", 0, int))):
            held.enter_context(run_slot(profile, f"{ctx.name}-held-{i}"))
        try:
            result, run_dir = run_as(profile, scenario, ctx.platform, ctx.run_scenario, params,
                                     outer=ctx.resources)
        except QuotaExceeded as exc:
            if not expect_refusal:
                raise StepFailed(f"step {ctx.name!r}: {exc.message}") from None
            with ctx.open_log() as log:
                log.write(exc.message + "\n")
            return StepOutcome(metrics={"refused": 1}, outputs={"message": exc.message})
    if expect_refusal:
        raise StepFailed(f"step {ctx.name!r}: expected the quota to refuse the run; it ran "
                         f"({result.status})")
    if not result.ok:
        raise StepFailed(f"step {ctx.name!r}: the run as {profile.name} {result.status}: "
                         f"{result.message}")
    return StepOutcome(metrics={"refused": 0, "steps": len(result.steps)},
                       outputs={"run": run_dir.name, "run_id": result.run_id,
                                "status": result.status})


OUTPUTS = ("refused", "steps", "message", "run", "run_id", "status")

KIND = StepKind("profile_run", run, outputs=OUTPUTS)
