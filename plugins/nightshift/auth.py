"""Who may do what in the production layout: Airflow's FAB auth manager with Nightshift's roles.

docker-compose.yaml and `make e2e` run ``NightshiftAuthManager`` (set by
``AIRFLOW__CORE__AUTH_MANAGER``), which brings ``NightshiftSecurityManager`` with it, and FAB's
settings from ``include/config/webserver_config.py`` (``[fab] config_file``, settings only: it
imports nothing from plugins/). Users and roles live in the metadata DB; FAB syncs the
roles below into it at every api-server start (and on ``airflow sync-perm``). Local ``make run``
keeps Airflow's simple auth manager: one admin, on 127.0.0.1 only.

Roles:

- **Admin**: everything (FAB's).
- **Op**: read everything a Viewer reads; trigger, clear, mark, backfill, pause, delete runs; pools;
  Variables read-only; no Connections at all (their passwords and extras stay with Admin); no XCom
  writes (a task's inputs: an edited XCom could point a task at any file), no asset events (they
  claim data was written), no DAG deletion (it erases the DAG's history).
- **Labeller**: the sentiment labelling DAG's Required Actions (read and answer), and reading the
  labelling and retraining DAGs' pages and docs. No triggering or clearing, no Connections,
  Variables, XComs or task logs.
- **Viewer**: read-only (FAB's), no Connections or Variables.
- FAB's **User** (none of ours): a Viewer who may also trigger, clear, mark and pause, within the
  same limits as Op.

Every role defined here but Admin is exact after each sync: FAB's sync only adds permissions, so
``sync_roles`` then revokes whatever a role holds beyond its definition (a database first set up
by stock FAB, whose Op may read Connections and write XComs, or a grant made in the UI). Admin
stays as FAB keeps it: every permission. A deployment that needs other grants makes a role of its
own.

Labelling requests may be assigned to a role (``assigned_roles`` in include/config/labelling.yaml):
the request carries ``role:<name>`` in ``assigned_users`` and ``NightshiftAuthManager`` lets any
user holding that role answer, as well as users assigned by login. Admins may always answer.
"""

from __future__ import annotations

import logging
from functools import cached_property
from typing import Any

from airflow.exceptions import AirflowConfigException
from airflow.providers.fab.auth_manager.fab_auth_manager import FabAuthManager
from airflow.providers.fab.auth_manager.security_manager.override import FabAirflowSecurityManagerOverride
from airflow.providers.fab.www.security import permissions as p

from nightshift_core.access import ADMIN, may_answer

log = logging.getLogger(__name__)

OP = "Op"
LABELLER = "Labeller"
VIEWER = "Viewer"

_SM = FabAirflowSecurityManagerOverride
_WRITES = (p.ACTION_CAN_CREATE, p.ACTION_CAN_EDIT, p.ACTION_CAN_DELETE)


def _each(actions: tuple[str, ...], resource: str) -> set[tuple[str, str]]:
    return {(action, resource) for action in actions}


# What only Admin may hold: secrets; writing what tasks read (an XCom can name any file) or what
# says data was written (asset events); deleting a DAG with its history.
ADMIN_ONLY = (
    _each((*_WRITES, p.ACTION_CAN_READ, p.ACTION_CAN_ACCESS_MENU), p.RESOURCE_CONNECTION)
    | _each(_WRITES, p.RESOURCE_VARIABLE)
    | _each(_WRITES, p.RESOURCE_XCOM)
    | _each(_WRITES, p.RESOURCE_ASSET)
    | {(p.ACTION_CAN_DELETE, p.RESOURCE_DAG)}
)


def _below_admin(perms: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [perm for perm in dict.fromkeys(perms) if perm not in ADMIN_ONLY]


OP_PERMISSIONS = _below_admin(_SM.VIEWER_PERMISSIONS + _SM.USER_PERMISSIONS + _SM.OP_PERMISSIONS)


def labeller_permissions(labelling_dag: str, retrain_dag: str) -> list[tuple[str, str]]:
    """A Labeller's permissions: the labelling DAG's requests, both DAGs' pages, their own profile."""
    return [
        (p.ACTION_CAN_READ, p.RESOURCE_WEBSITE),
        (p.ACTION_CAN_READ, p.RESOURCE_MY_PROFILE),
        (p.ACTION_CAN_EDIT, p.RESOURCE_MY_PROFILE),
        (p.ACTION_CAN_READ, p.RESOURCE_MY_PASSWORD),
        (p.ACTION_CAN_EDIT, p.RESOURCE_MY_PASSWORD),
        (p.ACTION_CAN_ACCESS_MENU, p.RESOURCE_DAG),
        (p.ACTION_CAN_ACCESS_MENU, p.RESOURCE_HITL_DETAIL),
        (p.ACTION_CAN_READ, p.RESOURCE_HITL_DETAIL),
        (p.ACTION_CAN_EDIT, p.RESOURCE_HITL_DETAIL),
        # The request's page shows its run and task; answering is a PUT on the DAG's sub-entity,
        # which FAB authorises with edit on that DAG (pausing it is the only other thing that allows).
        (p.ACTION_CAN_READ, p.RESOURCE_DAG_RUN),
        (p.ACTION_CAN_READ, p.RESOURCE_TASK_INSTANCE),
        (p.ACTION_CAN_READ, p.RESOURCE_DAG_VERSION),
        (p.ACTION_CAN_READ, p.resource_name(labelling_dag, p.RESOURCE_DAG)),
        (p.ACTION_CAN_EDIT, p.resource_name(labelling_dag, p.RESOURCE_DAG)),
        (p.ACTION_CAN_READ, p.resource_name(retrain_dag, p.RESOURCE_DAG)),
    ]


def _pair(perm: Any) -> tuple[str, str]:
    """(action, resource) of a FAB permission row; a row missing either matches no definition."""
    return (getattr(perm.action, "name", ""), getattr(perm.resource, "name", ""))


def _dag_ids() -> tuple[str, str]:
    from nightshift_core.ml import config as ml_config
    from nightshift_core.ml import labelling

    return labelling.load().dag_id, ml_config.load().dag_id


class NightshiftSecurityManager(FabAirflowSecurityManagerOverride):
    """FAB's security manager with Nightshift's Op and the Labeller role (see the module's doc)."""

    @property
    def ROLE_CONFIGS(self) -> list[dict[str, Any]]:  # noqa: N802 (FAB's name)
        viewer, user = _SM.VIEWER_PERMISSIONS, _SM.USER_PERMISSIONS
        return [
            {"role": "Public", "perms": []},
            {"role": VIEWER, "perms": viewer},
            {"role": "User", "perms": _below_admin(viewer + user)},  # FAB's; not one of ours
            {"role": OP, "perms": OP_PERMISSIONS},
            {"role": ADMIN, "perms": viewer + user + _SM.OP_PERMISSIONS + _SM.ADMIN_PERMISSIONS},
            {"role": LABELLER, "perms": labeller_permissions(*_dag_ids())},
        ]

    def sync_roles(self) -> None:
        """FAB's sync (adds what is missing), then every role but Admin loses what its definition lacks."""
        super().sync_roles()
        self.revoke_undefined_permissions()

    def revoke_undefined_permissions(self) -> None:
        for config in self.ROLE_CONFIGS:
            role = self.find_role(config["role"])
            if config["role"] == ADMIN or role is None:
                continue
            defined = set(config["perms"])
            kept = [perm for perm in role.permissions if _pair(perm) in defined]
            if len(kept) < len(role.permissions):
                revoked = sorted({_pair(perm) for perm in role.permissions} - defined)
                log.warning("Role %s: revoked %s (not in plugins/nightshift/auth.py)", role.name, revoked)
                role.permissions = kept
        self.session.commit()


class NightshiftAuthManager(FabAuthManager):
    """FAB's auth manager with Nightshift's roles; a Required Action assigned to ``role:<name>`` may be
    answered by that role."""

    @cached_property
    def security_manager(self) -> NightshiftSecurityManager:
        """``NightshiftSecurityManager``, chosen here rather than by the FAB config file, which then needs
        no import from plugins/. A ``SECURITY_MANAGER_CLASS`` set there must extend it."""
        from flask import current_app

        configured = current_app.config.get("SECURITY_MANAGER_CLASS") or NightshiftSecurityManager
        if not (isinstance(configured, type) and issubclass(configured, NightshiftSecurityManager)):
            raise AirflowConfigException(
                f"[fab] config_file: SECURITY_MANAGER_CLASS = {configured!r} would drop Nightshift's roles; "
                "remove it (NightshiftAuthManager brings nightshift.auth.NightshiftSecurityManager) "
                "or set a subclass of NightshiftSecurityManager"
            )
        if not self.appbuilder:
            raise AirflowConfigException("FAB's AppBuilder is not initialized")
        return configured(self.appbuilder)

    def is_authorized_hitl_task(self, *, assigned_users: set[str], user: Any) -> bool:
        ids = {str(user.get_id()), str(getattr(user, "username", "") or "")} - {""}
        return may_answer(set(assigned_users), ids, {role.name for role in getattr(user, "roles", [])})
