"""The Kubeflow Pipelines basic sample set, written with the kfp DSL.

Sequential steps, a parallel join, a condition with both branches, an exit handler that
runs on failure too, immediate values of every parameter type, a ParallelFor fan-out with
a fan-in, and a step that raises (for the error path). Components use the standard library
only, so they run in a local subprocess (kfp.local.SubprocessRunner), in the minikf runtime
image (which carries kfp, so tasks skip installing it) and in a cluster alike.
"""

import functools
import os

from kfp import dsl

RUNTIME_IMAGE = os.environ.get("MINIKF_RUNTIME_IMAGE", "minikf/runtime:latest")
# The runtime image already carries kfp: no per-task `pip install kfp` (about 1 s a task).
component = functools.partial(dsl.component, base_image=RUNTIME_IMAGE, install_kfp_package=False)


@component
def add(a: int, b: int) -> int:
    return a + b


@component
def multiply(a: int, b: int) -> int:
    return a * b


@component
def square(x: int) -> int:
    return x * x


@component
def total(values: list) -> int:
    return sum(int(v) for v in values)


@component
def label(kind: str, number: int) -> str:
    return f"{kind}:{number}"


@component
def work(fail: bool) -> str:
    if fail:
        raise RuntimeError("work failed on purpose (fail=True)")
    return "done"


@component
def record_exit(status: dsl.PipelineTaskFinalStatus) -> str:
    """The exit task: returns the final state of the tasks it guards (kept in the pipeline root,
    where any runner puts task outputs, so the scenario can read it back)."""
    import json

    return json.dumps({"exit_ran": 1, "state": status.state,
                       "body_failed": int(status.state == "FAILED")})


@component
def echo(text: str, count: int, ratio: float, flag: bool, items: list, config: dict) -> dict:
    """Returns the immediate values it was given, so their types survive the round trip."""
    return {"text": text, "count": count, "ratio": ratio, "flag": flag, "items": items,
            "config": config}


@component
def explode(reason: str) -> int:
    raise ValueError(f"explode: {reason}")


@dsl.pipeline(name="basics-sequential", description="add then multiply: (a + b) * c")
def sequential(a: int = 3, b: int = 4, c: int = 5) -> int:
    summed = add(a=a, b=b)
    return multiply(a=summed.output, b=c).output


@dsl.pipeline(name="basics-parallel-join", description="x*x and x+x independently, then joined")
def parallel_join(x: int = 6) -> int:
    squared = square(x=x)
    doubled = add(a=x, b=x)
    return add(a=squared.output, b=doubled.output).output


@dsl.pipeline(name="basics-condition", description="dsl.If / dsl.Else on a threshold")
def condition(number: int = 7, threshold: int = 5) -> str:
    with dsl.If(number >= threshold):
        high = label(kind="high", number=number)
    with dsl.Else():
        low = label(kind="low", number=number)
    return dsl.OneOf(high.output, low.output)


@dsl.pipeline(name="basics-exit-handler", description="an exit task that runs on failure too")
def exit_handler(fail: bool = False):
    with dsl.ExitHandler(exit_task=record_exit()):
        work(fail=fail)


@dsl.pipeline(name="basics-immediate", description="constants of every parameter type")
def immediate() -> dict:
    return echo(text="hello", count=3, ratio=0.5, flag=True, items=[1, 2, 3],
                config={"key": "value", "nested": [1]}).output


@dsl.pipeline(name="basics-parallel-for", description="fan out over items, fan in the sum")
def parallel_for(items: list = [1, 2, 3, 4]) -> int:  # noqa: B006 - a pipeline default, not state
    with dsl.ParallelFor(items=items, parallelism=2) as item:
        squared = square(x=item)
    return total(values=dsl.Collected(squared.output)).output


@dsl.pipeline(name="basics-raises", description="a step that raises: the error path")
def raises(reason: str = "bad input") -> int:
    return explode(reason=reason).output

