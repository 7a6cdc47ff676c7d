"""Run a scenario on a platform: steps in order, outputs forward, timeouts, cleanup, results."""

from __future__ import annotations

import secrets
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from minikf.engine import checks, reaper
from minikf.engine.checks import step_kind
from minikf.engine.keep import keep_outputs
from minikf.metadata import lineage
from minikf.platforms.base import Platform
from minikf.results import RunResult, Status, StepResult, aggregate, versions, write_all
from minikf.runtime import files
from minikf.runtime.errors import Interrupted, MinikfError, WriteFailed
from minikf.runtime.liverun import LiveRun
from minikf.runtime.ports import free_port
from minikf.runtime.processes import RunResources
from minikf.scenario.schema import Scenario, Step
from minikf.scenario.templating import TemplateError, render
from minikf.steps.base import StepContext, StepOutcome

ProgressHook = Callable[[str, StepResult | None], None]


SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # what stops a run, cleaned up


@contextmanager
def _signals(interrupt: bool):
    """In the main thread: with `interrupt`, each of SIGNALS raises Interrupted (Ctrl-C, a CI's
    SIGTERM, a closed terminal's SIGHUP all take the same path); without, they are ignored,
    so that a second Ctrl-C cannot cut the cleanup short (kill -9 still can: the reaper then
    finishes it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum, frame):
        raise Interrupted(signum)

    handler = _raise if interrupt else signal.SIG_IGN
    previous = {sig: signal.signal(sig, handler) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, before in previous.items():
            signal.signal(sig, before)


class _Lookup:
    """Resolves `${...}` references against params, earlier outputs, ports and the work dir."""

    def __init__(self, params: dict, workdir: Path, scenario_dir: Path,
                 note_port: Callable[[int], None] = lambda port: None) -> None:
        self.params = params
        self.note_port = note_port
        self.workdir = workdir
        self.scenario_dir = scenario_dir
        self.outputs: dict[str, dict] = {}
        self.ports: dict[str, int] = {}
        self.secrets: dict[str, str] = {}

    def __call__(self, ref: str) -> Any:
        head, _, rest = ref.partition(".")
        if head == "workdir" and not rest:
            return str(self.workdir)
        if head == "scenario_dir" and not rest:
            return str(self.scenario_dir)
        if head == "params" and rest in self.params:
            return self.params[rest]
        if head == "ports" and rest:
            if rest not in self.ports:
                self.ports[rest] = free_port()
                self.note_port(self.ports[rest])
            return self.ports[rest]
        if head == "secrets" and rest:
            # A random token per run and name; never written into results.
            return self.secrets.setdefault(rest, secrets.token_urlsafe(24))
        if head == "steps":
            step, _, key = rest.partition(".outputs.")
            if step in self.outputs and key in self.outputs[step]:
                return self.outputs[step][key]
        raise TemplateError(f"unknown reference ${{{ref}}}")


def _run_with_timeout(func, ctx: StepContext) -> StepOutcome:
    """Run the step in a thread; on timeout kill what it started and raise TimeoutError."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["outcome"] = func(ctx)
        except BaseException as exc:  # handed back to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"step-{ctx.name}", daemon=True)
    thread.start()
    deadline = time.monotonic() + ctx.timeout
    while thread.is_alive():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            ctx.resources.stop_processes()
            thread.join(5)
            raise TimeoutError(f"step {ctx.name!r} timed out after {ctx.timeout:g}s")
        thread.join(min(remaining, 0.2))
    if "error" in box:
        raise box["error"]
    return box["outcome"]


def _run_step(step: Step, lookup: _Lookup, base: dict) -> StepResult:
    result = StepResult(name=step.name, kind=step.kind)
    log_path = base["logs"] / f"{step.name}.log"
    result.log = str(log_path)
    result.started = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    started = time.monotonic()
    try:
        args = render(step.args, lookup)
        ctx = StepContext(
            name=step.name, args=args, workdir=base["workdir"], log_path=log_path,
            resources=base["resources"], platform=base["platform"], params=lookup.params,
            timeout=step.timeout, results_dir=base["results"],
            status=lambda text: base["progress"](f"{step.name}: {text}", None),
            run_scenario=run_scenario,
        )
        kind = step_kind(step.kind)
        outcome = _run_with_timeout(kind.run, ctx)
        undeclared = kind.undeclared([*outcome.metrics, *outcome.outputs])
        if undeclared:  # a step kind's bug: scenarios are validated against what it declares
            raise MinikfError(f"step kind {kind.name!r} produced outputs it does not declare: "
                              f"{', '.join(undeclared)} (StepKind.outputs)")
        result.metrics, result.series = outcome.metrics, outcome.series
        result.outputs = outcome.outputs
        lookup.outputs[step.name] = {**outcome.metrics, **outcome.outputs}
        failures = [m for e in step.expectations() if (m := e.check(outcome.metrics))]
        result.status = Status.FAILED if failures else Status.PASSED
        result.message = "; ".join(failures)
    except TimeoutError as exc:
        result.status, result.message = Status.TIMEOUT, str(exc)
    except (TemplateError, MinikfError) as exc:  # messages meant for the user (StepFailed too)
        result.status, result.message = Status.FAILED, str(exc)
    except OSError as exc:  # e.g. a full disk: the file and the reason, not an errno tuple
        result.status = Status.FAILED
        result.message = f"{files.os_error_line(exc)} (see {log_path})"
    except Exception as exc:  # a bug in a step: still a result, with its log path
        result.status = Status.FAILED
        result.message = f"{type(exc).__name__}: {exc} (see {log_path})"
    result.duration_s = round(time.monotonic() - started, 3)
    if not log_path.exists():  # a step that wrote no log: results name only files that exist
        result.log = None
    return result


def _prewarm(scenario: Scenario, base: dict) -> None:
    """Where the platform can import ahead what the steps will run (local: warm interpreters),
    start that now, so the imports overlap the steps before them."""
    modules = (m for step in scenario.steps for m in step_kind(step.kind).warm_modules)
    for module in dict.fromkeys(modules):
        base["platform"].prewarm(module, base["resources"], base["workdir"] / "warm")


def _save(run: RunResult, results_dir: Path) -> None:
    """results.json, junit.xml, report.html; when the disk refuses one, the error says how the
    run itself ended too (the earlier files are left whole)."""
    try:
        write_all(run, results_dir)
    except WriteFailed as exc:
        raise WriteFailed(f"{run.scenario}: {run.status}, but its results were not saved: "
                          f"{exc.message}") from None


def run_scenario(
    scenario: Scenario,
    platform: Platform,
    results_dir: Path,
    params: dict | None = None,
    progress: ProgressHook | None = None,
    keep_workdir: bool = False,
) -> RunResult:
    """Run every step; always tear down what the run started and write results."""
    progress = progress or (lambda msg, res: None)
    checks.check_params(scenario, params or {})
    missing = platform.missing(scenario.requires)
    if not missing:  # what `scenarios validate` checks, before anything (a skipped run needs none)
        checks.check(scenario)
    merged = {**scenario.params, **(params or {})}
    run = RunResult(
        run_id=uuid.uuid4().hex[:12], scenario=scenario.name, platform=platform.name,
        started=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        versions=versions(), platform_info=platform.describe(),
    )
    # Made 0700 when new (results, logs and artifacts are for their owner only) and proven
    # writable before any step, so a read-only or full disk stops the run before any work.
    # absolute: the steps' outputs (the published model's dir) are handed to processes that run
    # elsewhere (a container, a cluster), where a path relative to this cwd means nothing
    results_dir = files.check_writable_dir(Path(results_dir).absolute(), "results dir",
                                           "choose a writable folder with free space (--results DIR)")
    if missing:
        run.status = Status.SKIPPED
        run.message = f"platform {platform.name} lacks {', '.join(missing)}"
        run.steps = [StepResult(s.name, s.kind, Status.SKIPPED, message=run.message)
                     for s in scenario.steps]
        _save(run, results_dir)
        return run

    resources = RunResources(run_id=run.run_id)
    resources.record = LiveRun.create(
        run.run_id, started=run.started, scenario=scenario.name, platform=platform.name,
        progress={"results_dir": str(results_dir.resolve()),
                  "pending": [[s.name, s.kind] for s in scenario.steps]})
    watch = reaper.watch(resources.record)
    try:
        workdir = resources.add_temp_dir(Path(tempfile.mkdtemp(prefix=f"minikf-{run.run_id}-")))
        base = {"workdir": workdir, "resources": resources, "platform": platform,
                "logs": results_dir / "logs", "results": results_dir, "progress": progress}
        scenario_dir = scenario.path.parent.resolve() if scenario.path else Path.cwd()
        lookup = _Lookup(merged, workdir, scenario_dir, resources.note_port)
        lookup.params = {k: render(v, lookup) for k, v in merged.items()}
        if keep_workdir:
            resources.keep_temp_dir(workdir)
    except BaseException:  # nothing ran yet: undo the setup, leave no record behind
        resources.cleanup()
        resources.record.remove()
        watch.release()
        raise
    started = time.monotonic()
    interrupted: Interrupted | None = None
    current: tuple[Step, StepResult, float] | None = None  # the step running, since when
    try:
        with _signals(interrupt=True):
            _prewarm(scenario, base)
            for step in scenario.steps:
                current = (step, _starting(step, run, resources), time.monotonic())
                progress(step.name, None)
                result = _run_step(step, lookup, base)
                current = None
                run.steps.append(result)
                progress(step.name, result)
                if result.status is not Status.PASSED:
                    break
    except KeyboardInterrupt as exc:  # Interrupted, or Ctrl-C before our handler was in place
        interrupted = exc if isinstance(exc, Interrupted) else Interrupted(signal.SIGINT)
    finally:
        with _signals(interrupt=False):
            if interrupted is not None and current is not None:
                cut = _interrupted_step(*current, interrupted)
                run.steps.append(cut)
                progress(cut.name, cut)
            _finish(run, scenario, lookup, resources, results_dir, started, interrupted, watch)
    if interrupted is not None:
        raise interrupted
    return run


def _starting(step: Step, run: RunResult, resources: RunResources) -> StepResult:
    """The step's result should it be interrupted; written into the live record with the
    results so far, for a reaper that has to finish the run."""
    result = StepResult(step.name, step.kind, Status.INTERRUPTED,
                        started=datetime.now(timezone.utc).isoformat(timespec="milliseconds"))
    so_far = asdict(run)
    resources.update_record(lambda record: record.progress.update(
        run=so_far, current=step.name, current_started=result.started))
    return result


def _interrupted_step(step: Step, result: StepResult, since: float,
                      why: Interrupted) -> StepResult:
    result.duration_s = round(time.monotonic() - since, 3)
    result.message = (f"interrupted by {why.name} after {result.duration_s:.1f}s; "
                      f"everything it started was stopped")
    return result


def _finish(run: RunResult, scenario: Scenario, lookup: _Lookup, resources: RunResources,
            results_dir: Path, started: float, interrupted: Interrupted | None,
            watch: reaper.Watch) -> None:
    """Clean up, write the results, then let go of the live record and the reaper."""
    recorded = lineage.collect(run, scenario, lookup, results_dir)  # before files go
    problems = keep_outputs(run, lookup.workdir, results_dir) + resources.cleanup()
    done = {s.name for s in run.steps}
    for step in scenario.steps:
        if step.name not in done:
            reason = "interrupted" if interrupted else "not run: an earlier step failed"
            run.steps.append(StepResult(step.name, step.kind, Status.SKIPPED, message=reason))
    run.duration_s = round(time.monotonic() - started, 3)
    failed = [s for s in run.steps if s.status.failed]
    run.status = aggregate(s.status for s in run.steps)
    if interrupted is not None:
        run.message = interrupted.message
    elif failed:
        run.message = f"step {failed[0].name}: {failed[0].message}"
    if problems:
        run.message = (run.message + " cleanup: " + "; ".join(problems)).strip()
    if recorded:
        recorded.save(run)
    resources.update_record(lambda record: record.progress.update(done=True))
    try:
        _save(run, results_dir)
    finally:
        if not problems:  # else it stays, for `minikf clean` to try again
            resources.record.remove()
        watch.release()
