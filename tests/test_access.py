"""Access control of the production layout: the roles' permissions, who may answer a labelling
request, and what the labelling DAG assigns under each auth manager (plugins/nightshift/auth.py)."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
from airflow.providers.fab.www.security import permissions as p

from nightshift.auth import (
    OP_PERMISSIONS,
    NightshiftAuthManager,
    NightshiftSecurityManager,
    labeller_permissions,
)
from nightshift.operators.labelling import assignees
from nightshift_core.access import AUTH_MANAGER, may_answer, understands_roles
from nightshift_core.ml.labelling import load

SIMPLE = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"


def roles() -> dict[str, set[tuple[str, str]]]:
    configs = NightshiftSecurityManager.ROLE_CONFIGS.fget(None)  # the property needs no app
    return {c["role"]: set(c["perms"]) for c in configs}


def test_the_shipped_roles_exist():
    assert {"Admin", "Op", "Labeller", "Viewer"} <= set(roles())


def test_no_role_below_admin_touches_connections_or_writes_variables():
    shipped = roles()
    for name in ("Op", "Labeller", "Viewer"):
        held = shipped[name]
        assert not {perm for perm in held if perm[1] == p.RESOURCE_CONNECTION}, name
        writes = {
            (a, p.RESOURCE_VARIABLE) for a in (p.ACTION_CAN_CREATE, p.ACTION_CAN_EDIT, p.ACTION_CAN_DELETE)
        }
        assert not held & writes, name
    assert (p.ACTION_CAN_READ, p.RESOURCE_CONNECTION) in shipped["Admin"]
    assert (p.ACTION_CAN_EDIT, p.RESOURCE_CONNECTION) in shipped["Admin"]


def test_op_triggers_clears_backfills_and_reads_logs():
    op = roles()["Op"]
    for perm in [
        (p.ACTION_CAN_CREATE, p.RESOURCE_DAG_RUN),
        (p.ACTION_CAN_EDIT, p.RESOURCE_TASK_INSTANCE),
        (p.ACTION_CAN_CREATE, p.RESOURCE_BACKFILL),
        (p.ACTION_CAN_READ, p.RESOURCE_TASK_LOG),
        (p.ACTION_CAN_READ, p.RESOURCE_VARIABLE),
    ]:
        assert perm in op, perm
    assert set(OP_PERMISSIONS) <= op


def test_a_labeller_answers_requests_of_the_labelling_dag_and_nothing_else():
    labeller = roles()["Labeller"]
    assert labeller == set(labeller_permissions("sentiment_labelling", "sentiment_retrain"))
    assert (p.ACTION_CAN_EDIT, p.RESOURCE_HITL_DETAIL) in labeller
    assert (p.ACTION_CAN_EDIT, "DAG:sentiment_labelling") in labeller
    assert (p.ACTION_CAN_READ, "DAG:sentiment_retrain") in labeller
    resources = {resource for _, resource in labeller}
    for forbidden in (p.RESOURCE_XCOM, p.RESOURCE_TASK_LOG, p.RESOURCE_VARIABLE, p.RESOURCE_CONNECTION):
        assert forbidden not in resources, forbidden
    assert (p.ACTION_CAN_READ, p.RESOURCE_DAG) not in labeller, "every DAG: only the two named ones"
    assert (p.ACTION_CAN_CREATE, p.RESOURCE_DAG_RUN) not in labeller
    assert not {perm for perm in labeller if perm[0] == p.ACTION_CAN_EDIT and perm[1].startswith("DAG:")} - {
        (p.ACTION_CAN_EDIT, "DAG:sentiment_labelling")
    }


@pytest.mark.parametrize(
    ("assigned", "ids", "user_roles", "allowed"),
    [
        ({"role:Labeller"}, {"7", "alice"}, {"Labeller"}, True),
        ({"role:Labeller"}, {"8", "olga"}, {"Op"}, False),
        ({"role:Labeller", "olga"}, {"8", "olga"}, {"Op"}, True),  # assigned by login
        ({"role:Labeller"}, {"1", "admin"}, {"Admin"}, True),
        ({"9"}, {"9", "bob"}, {"Viewer"}, True),  # assigned by user id
        ({"role:Labeller"}, {"10", "Labeller"}, {"Viewer"}, False),  # a login is not a role
    ],
)  # fmt: skip
def test_who_may_answer(assigned, ids, user_roles, allowed):
    assert may_answer(assigned, ids, user_roles) is allowed


def test_the_auth_manager_checks_the_users_login_id_and_roles():
    manager = NightshiftAuthManager.__new__(NightshiftAuthManager)  # the check needs no app
    labeller = SimpleNamespace(get_id=lambda: 7, username="alice", roles=[SimpleNamespace(name="Labeller")])
    op = SimpleNamespace(get_id=lambda: 8, username="olga", roles=[SimpleNamespace(name="Op")])
    assert manager.is_authorized_hitl_task(assigned_users={"role:Labeller"}, user=labeller)
    assert not manager.is_authorized_hitl_task(assigned_users={"role:Labeller"}, user=op)
    assert manager.is_authorized_hitl_task(assigned_users={"olga"}, user=op)


def test_requests_are_assigned_to_the_role_only_under_the_production_auth_manager():
    cfg = dataclasses.replace(load(), assigned_users=({"id": "alice", "name": "Alice"},))
    assert understands_roles(AUTH_MANAGER) and not understands_roles(SIMPLE)
    assert assignees(cfg, AUTH_MANAGER) == [
        {"id": "alice", "name": "Alice"},
        {"id": "role:Labeller", "name": "Labeller (role)"},
    ]
    assert assignees(cfg, SIMPLE) == [{"id": "alice", "name": "Alice"}]
    assert assignees(load(), SIMPLE) == []
