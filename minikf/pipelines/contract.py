"""The task contract: what every pipeline runner must hand a task the same way, as pipelines
that report what their tasks saw.

A task may rely on its arguments (every parameter type, as typed values), the env variables set
on it (`set_env_variable`), reading a host path named in the pipeline's arguments, passing an
artifact to the next task, the files it writes belonging to the caller, minikf's workload code
being importable, and its exit status deciding its state (returning: SUCCEEDED; raising,
`sys.exit(3)` or being killed: FAILED). The task's host environment is not part of it: a
local task inherits the driver's, a container starts from its image's.

tests/platforms/test_parity.py runs these on local and docker and compares what each task saw.
"""

import functools
import os

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

RUNTIME_IMAGE = os.environ.get("MINIKF_RUNTIME_IMAGE", "minikf/runtime:latest")
component = functools.partial(dsl.component, base_image=RUNTIME_IMAGE, install_kfp_package=False)
ENV_NAME, ENV_VALUE = "MINIKF_CONTRACT", "set on the task"
EXIT_MODES = ("return", "raise", "exit", "signal")


@component
def probe(text: str, count: int, ratio: float, flag: bool, items: list, config: dict,
          host_file: str, data: Output[Dataset]) -> dict:
    """What this task was handed, as JSON values (types included)."""
    import hashlib
    import importlib.util
    import os

    with open(data.path, "w") as out:
        out.write(f"{text}:{count}")
    try:
        with open(host_file, "rb") as f:
            host = hashlib.sha256(f.read()).hexdigest()
    except OSError as exc:
        host = f"unreadable: {type(exc).__name__}"
    args = {"text": text, "count": count, "ratio": ratio, "flag": flag, "items": items,
            "config": config}
    return {"arguments": args, "types": {k: type(v).__name__ for k, v in args.items()},
            "env": os.environ.get("MINIKF_CONTRACT"), "host_file_sha256": host,
            "data_owner": [os.stat(data.path).st_uid, os.stat(data.path).st_gid],
            "workload_importable": importlib.util.find_spec("minikf.workload") is not None}


@component
def consume(data: Input[Dataset]) -> str:
    """The artifact the previous task wrote, as this task reads it."""
    with open(data.path) as f:
        return f.read()


@component
def finish(mode: str) -> str:
    """Ends the way `mode` says, at once (a fast exit is where a runner can lose the status)."""
    import os
    import signal
    import sys

    if mode == "raise":
        raise RuntimeError("finish: raised on purpose")
    if mode == "exit":
        sys.exit(3)
    if mode == "signal":
        os.kill(os.getpid(), signal.SIGKILL)
    return mode


@dsl.pipeline(name="contract-probe", description="what a task is handed: arguments, env, files")
def task_contract(host_file: str, text: str = "hello", count: int = 3, ratio: float = 0.5,
                  flag: bool = True, items: list = [1, 2, 3],  # noqa: B006 - pipeline defaults
                  config: dict = {"key": "value", "nested": [1]}) -> dict:  # noqa: B006
    seen = probe(text=text, count=count, ratio=ratio, flag=flag, items=items, config=config,
                 host_file=host_file)
    seen.set_env_variable(ENV_NAME, ENV_VALUE)
    consume(data=seen.outputs["data"])
    return seen.outputs["Output"]


@dsl.pipeline(name="contract-exit", description="a task's exit decides its state")
def exit_contract(mode: str = "return") -> str:
    return finish(mode=mode).output
