"""Profiles: users with private work dirs, tokens and quotas (see store, quota, runs, api)."""

from minikf.profiles.quota import QuotaExceeded, check_workers, run_slot
from minikf.profiles.store import (
    Profile,
    Quota,
    create_profile,
    delete_profile,
    list_profiles,
    load_profile,
    minikf_home,
    user_for_token,
)

__all__ = ["Profile", "Quota", "QuotaExceeded", "check_workers", "create_profile",
           "delete_profile", "list_profiles", "load_profile", "minikf_home", "run_slot",
           "user_for_token"]
