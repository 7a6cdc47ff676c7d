"""Notebooks: a Jupyter server per user (server), notebooks run with nbclient (execute), and
the Kubeflow Notebook CR for clusters (kubernetes)."""
