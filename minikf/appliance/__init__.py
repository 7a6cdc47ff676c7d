"""The appliance: a single-node Kubernetes with pinned Kubeflow components, made by kind or by a
Vagrant VM that runs kind. Every external tool is called through minikf.appliance.tools."""
