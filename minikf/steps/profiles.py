"""Create user profiles (work dir, token, quota) in a MINIKF_HOME for the run."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from minikf.profiles.store import Quota, create_profile
from minikf.runtime.errors import MinikfError, StepFailed
from minikf.steps.base import StepContext, StepKind, StepOutcome


def run(ctx: StepContext) -> StepOutcome:
    home = Path(str(ctx.arg("home", kind=str)))
    created = []
    for i, entry in enumerate(ctx.arg("profiles", kind=list)):
        if not isinstance(entry, dict) or "name" not in entry:
            raise StepFailed(f"step {ctx.name!r}: args.profiles[{i}] needs a name")
        try:
            quota = Quota(**entry.get("quota", {}))
            profile, _ = create_profile(str(entry["name"]), quota, entry.get("token"), home)
        except ValidationError as exc:
            raise StepFailed(f"step {ctx.name!r}: args.profiles[{i}].quota: {exc}") from None
        except MinikfError as exc:
            raise StepFailed(f"step {ctx.name!r}: args.profiles[{i}]: {exc.message}") from None
        created.append(profile.name)
    return StepOutcome(metrics={"profiles": len(created)},
                       outputs={"home": str(home), "names": created})


OUTPUTS = ("profiles", "home", "names")

KIND = StepKind("profiles", run, outputs=OUTPUTS)
