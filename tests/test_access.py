"""Access control of the production layout: the roles' permissions (as defined, and as the metadata
DB holds them after `airflow sync-perm`, also over a DB first set up by stock FAB), who may answer
a labelling request, and what the labelling DAG assigns under each auth manager
(plugins/nightshift/auth.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from support.services import scratch_database

from nightshift.auth import NightshiftAuthManager, NightshiftSecurityManager
from nightshift.operators.labelling import assignees
from nightshift_core.access import AUTH_MANAGER, may_answer, understands_roles
from nightshift_core.ml.labelling import load

ROOT = Path(__file__).resolve().parents[1]
SIMPLE = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
STOCK_FAB = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
_ACTIONS = {"create": "can_create", "read": "can_read", "edit": "can_edit", "delete": "can_delete",
            "menu": "menu_access"}  # fmt: skip


def perms(table: dict[str, str]) -> set[tuple[str, str]]:
    """{resource: "read edit menu"} -> {("can_read", resource), ("can_edit", resource), ...}."""
    return {(_ACTIONS[a], resource) for resource, actions in table.items() for a in actions.split()}


# What each shipped role holds, written out (docs/access-control.md says the same in words).
VIEWER = perms({
    "Asset Aliases": "read", "Assets": "read menu", "Backfills": "read", "Browse": "menu",
    "Cluster Activity": "read menu", "DAG Code": "read", "DAG Dependencies": "read menu",
    "DAG Runs": "read menu", "DAG Versions": "read", "DAG Warnings": "read", "DAGs": "read menu",
    "Docs": "menu", "Documentation": "menu", "HITL Detail": "read", "ImportError": "read",
    "Jobs": "read menu", "My Password": "read edit", "My Profile": "read edit", "Pools": "read",
    "SLA Misses": "read menu", "Task Instances": "read menu", "Task Logs": "read", "Website": "read",
    "XComs": "read",
})  # fmt: skip
OP = VIEWER | perms({
    "Admin": "menu", "Backfills": "create edit delete", "Configurations": "read menu",
    "DAG Runs": "create edit delete", "DAGs": "edit", "HITL Detail": "edit menu",
    "Plugins": "read menu", "Pools": "create edit delete menu", "Providers": "read menu",
    "Task Instances": "create edit delete", "Variables": "read menu", "XComs": "menu",
})  # fmt: skip
LABELLER = perms({
    "DAG Runs": "read", "DAG Versions": "read", "DAG:sentiment_labelling": "read edit",
    "DAG:sentiment_retrain": "read", "DAGs": "menu", "HITL Detail": "read edit menu",
    "My Password": "read edit", "My Profile": "read edit", "Task Instances": "read", "Website": "read",
})  # fmt: skip
EXPECTED = {"Op": OP, "Labeller": LABELLER, "Viewer": VIEWER, "Public": set()}
# Only Admin may hold these: secrets, and writing what tasks read or what says data was written.
ADMIN_ONLY = perms({
    "Connections": "create read edit delete menu", "Variables": "create edit delete",
    "XComs": "create edit delete", "Assets": "create edit delete", "DAGs": "delete",
})  # fmt: skip


def roles() -> dict[str, set[tuple[str, str]]]:
    configs = NightshiftSecurityManager.ROLE_CONFIGS.fget(None)  # the property needs no app
    return {c["role"]: set(c["perms"]) for c in configs}


def assert_shipped(held: dict[str, set[tuple[str, str]]]) -> None:
    for name in set(held) - {"Admin"}:  # FAB's User too
        assert not held[name] & ADMIN_ONLY, (name, sorted(held[name] & ADMIN_ONLY))
    for name, expected in EXPECTED.items():
        assert held[name] == expected, (
            f"{name}: extra {sorted(held[name] - expected)}, missing {sorted(expected - held[name])}"
        )
    assert ADMIN_ONLY | OP <= held["Admin"], sorted((ADMIN_ONLY | OP) - held["Admin"])


def test_the_shipped_roles_are_defined_as_written_out():
    assert_shipped(roles())


def _airflow(env: dict[str, str], *args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "airflow", *args], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, f"airflow {' '.join(args)}:\n{(result.stderr or result.stdout)[-3000:]}"


def _held(conn) -> dict[str, set[tuple[str, str]]]:
    """Every role's (action, resource) pairs, as the metadata DB holds them."""
    with conn.cursor() as cur:
        cur.execute(
            """
            SELECT r.name, a.name, v.name
            FROM ab_role r
            LEFT JOIN ab_permission_view_role pr ON pr.role_id = r.id
            LEFT JOIN ab_permission_view pv ON pv.id = pr.permission_view_id
            LEFT JOIN ab_permission a ON a.id = pv.permission_id
            LEFT JOIN ab_view_menu v ON v.id = pv.view_menu_id
            """
        )
        held: dict[str, set[tuple[str, str]]] = {}
        for role, action, resource in cur.fetchall():
            held.setdefault(role, set()).update({(action, resource)} if action else set())
    return held


def _grant(conn, role: str, action: str, resource: str) -> None:
    """What an admin's click in Security -> List Roles does."""
    with conn.cursor() as cur:
        cur.execute(
            """
            INSERT INTO ab_permission_view_role (id, permission_view_id, role_id)
            SELECT nextval('ab_permission_view_role_id_seq'), pv.id, r.id
            FROM ab_permission_view pv, ab_permission a, ab_view_menu v, ab_role r
            WHERE pv.permission_id = a.id AND pv.view_menu_id = v.id
              AND a.name = %s AND v.name = %s AND r.name = %s
            """,
            (action, resource, role),
        )
        assert cur.rowcount == 1, (role, action, resource)


@pytest.mark.integration
def test_sync_perm_makes_the_roles_of_a_stock_fab_database_exact(postgres, tmp_path):
    """A metadata DB set up by stock FAB (its Op reads Connections and writes XComs), with a grant
    made by hand; then the project's `airflow sync-perm`: the DB holds exactly the shipped roles."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "NIGHTSHIFT"))}
    (tmp_path / "dags").mkdir()
    with scratch_database(postgres, "ns_roles") as db:
        stock = base | {
            "AIRFLOW_HOME": str(tmp_path),
            "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": (
                f"postgresql+psycopg2://postgres@{postgres.host}:{postgres.port}/{db.name}"
            ),
            "AIRFLOW__CORE__AUTH_MANAGER": STOCK_FAB,
        }
        _airflow(stock, "db", "migrate")
        _airflow(stock, "sync-perm")
        before = _held(db.conn)
        assert {("can_read", "Connections"), ("can_edit", "XComs"), ("can_create", "Assets")} <= before["Op"]
        _grant(db.conn, "Viewer", "can_read", "Connections")

        ours = stock | {
            "AIRFLOW__CORE__AUTH_MANAGER": AUTH_MANAGER,
            "AIRFLOW__FAB__CONFIG_FILE": str(ROOT / "include" / "config" / "webserver_config.py"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "PYTHONPATH": os.pathsep.join(str(ROOT / d) for d in ("include", "plugins")),
        }
        _airflow(ours, "sync-perm")
        after = _held(db.conn)
    assert_shipped(after)
    assert after["Admin"] >= before["Admin"], "Admin lost permissions"


class _CustomRoles(NightshiftSecurityManager):
    """A deployment's own security manager: Nightshift's roles and more."""


@pytest.mark.parametrize("configured", [None, _CustomRoles])
def test_the_auth_manager_brings_the_roles_security_manager(monkeypatch, configured):
    """The FAB config file need not (and, being in include/, may not) name the security manager:
    the auth manager builds Nightshift's, or a subclass the file names."""
    from flask import Flask

    monkeypatch.setattr(NightshiftSecurityManager, "__init__", lambda self, appbuilder: None)
    app = Flask(__name__)
    app.config["SECURITY_MANAGER_CLASS"] = configured
    manager = NightshiftAuthManager.__new__(NightshiftAuthManager)
    manager.appbuilder = SimpleNamespace(app=app)
    with app.app_context():
        assert type(manager.security_manager) is (configured or NightshiftSecurityManager)


def test_a_security_manager_without_the_roles_is_refused():
    from airflow.exceptions import AirflowConfigException
    from airflow.providers.fab.auth_manager.security_manager.override import (
        FabAirflowSecurityManagerOverride,
    )
    from flask import Flask

    app = Flask(__name__)
    app.config["SECURITY_MANAGER_CLASS"] = FabAirflowSecurityManagerOverride
    manager = NightshiftAuthManager.__new__(NightshiftAuthManager)
    manager.appbuilder = SimpleNamespace(app=app)
    with (
        app.app_context(),
        pytest.raises(AirflowConfigException, match="SECURITY_MANAGER_CLASS.*NightshiftSecurityManager"),
    ):
        _ = manager.security_manager


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
    # FAB's user id is an int; the request lists ids as strings.
    assert manager.is_authorized_hitl_task(assigned_users={"8"}, user=op)
    assert not manager.is_authorized_hitl_task(assigned_users={"7", "80"}, user=op)


def test_requests_are_assigned_to_the_role_only_under_the_production_auth_manager():
    cfg = load().model_copy(update={"assigned_users": ({"id": "alice", "name": "Alice"},)})
    assert understands_roles(AUTH_MANAGER) and not understands_roles(SIMPLE)
    assert assignees(cfg, AUTH_MANAGER) == [
        {"id": "alice", "name": "Alice"},
        {"id": "role:Labeller", "name": "Labeller (role)"},
    ]
    assert assignees(cfg, SIMPLE) == [{"id": "alice", "name": "Alice"}]
    assert assignees(load(), SIMPLE) == []


def test_a_request_assigned_by_numeric_user_id_is_answered_by_that_user_only(tmp_path):
    """``assigned_users: [{id: 7}]`` (FAB's user id, a YAML number) reaches the request as "7"; the
    user whose id is 7 may answer, an Op with another id may not."""
    import yaml

    from nightshift_core.ml.labelling import CONFIG_PATH

    raw = yaml.safe_load(CONFIG_PATH.read_text())
    raw["assigned_users"] = [{"id": 7, "name": "Alice"}]
    (path := tmp_path / "labelling.yaml").write_text(yaml.safe_dump(raw))
    assigned = {user["id"] for user in assignees(load(path), AUTH_MANAGER)}
    assert assigned == {"7", "role:Labeller"}
    manager = NightshiftAuthManager.__new__(NightshiftAuthManager)
    alice = SimpleNamespace(get_id=lambda: 7, username="alice", roles=[SimpleNamespace(name="Viewer")])
    olga = SimpleNamespace(get_id=lambda: 70, username="olga", roles=[SimpleNamespace(name="Op")])
    assert manager.is_authorized_hitl_task(assigned_users=assigned, user=alice)
    assert not manager.is_authorized_hitl_task(assigned_users=assigned, user=olga)
