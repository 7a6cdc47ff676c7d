"""CLI command groups, one module per area; registered in minikf.cli.COMMAND_GROUPS."""
