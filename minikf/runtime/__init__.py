"""The runtime layer: what the engine, the steps and the platforms all use and none of them owns.

- errors: the error hierarchy (MinikfError and its kinds), handled once by the CLI;
- processes: a run's processes, process groups, temp dirs and cleanup callbacks (RunResources);
- ports: free loopback ports; waiting: one "poll until ready" loop; logs: log tails;
- sockets: which sockets a process listens on (the secure-defaults audit);
- files: atomic writes (temp file, fsync, rename) of every file a user keeps, writable-dir checks.

Nothing here imports another minikf package.
"""
