"""Step kinds, one module each; each defines `KIND = StepKind(...)` and is registered by name in
`minikf.plugins.STEP_KINDS` (a module that is not registered there is not a kind). Code shared
by several kinds lives outside this package (runtime, workload, platforms)."""
