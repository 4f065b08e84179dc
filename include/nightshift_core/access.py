"""Who may answer a labelling request: plain logic shared by the DAG and the production auth manager.

A request lists ``assigned_users`` ids; Nightshift adds ``role:<name>`` for each role in
``assigned_roles`` (include/config/labelling.yaml) when the production auth manager runs
(plugins/nightshift/auth.py), which lets that role's users answer.
"""

from __future__ import annotations

ROLE_PREFIX = "role:"
ADMIN = "Admin"
AUTH_MANAGER = "nightshift.auth.NightshiftAuthManager"


def may_answer(assigned: set[str], user_ids: set[str], roles: set[str]) -> bool:
    """Whether a user (their id and login, their role names) may answer a request assigned to ``assigned``.
    Admins always may."""
    if ADMIN in roles or assigned & user_ids:
        return True
    return any(a.startswith(ROLE_PREFIX) and a[len(ROLE_PREFIX) :] in roles for a in assigned)


def understands_roles(auth_manager: str) -> bool:
    """Whether the configured auth manager (``[core] auth_manager``) honours ``role:<name>`` assignments."""
    return auth_manager.strip() == AUTH_MANAGER
