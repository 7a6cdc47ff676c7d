"""Hyperparameter tuning, Katib-style: an objective metric and goal, a trial budget, parallel
trials, early stopping of bad trials, a search space over the trainer's lr / batch_size / epochs.

Locally the search runs with Optuna (the library behind Katib's own Optuna suggestion service);
minikf/tuning/katib.py renders the same spec as a Katib Experiment for a cluster.
"""
