"""Every name check rejects a trailing newline (``re.match`` with ``$`` let one through)."""

from __future__ import annotations

import pytest

from nightshift_core.reddit.config import check_subreddit
from nightshift_core.reports.config import ReportConfigError
from nightshift_core.reports.config import load as load_report
from nightshift_core.settings import SettingsError, load_settings
from nightshift_core.sync.config import SyncConfigError
from nightshift_core.sync.config import load as load_sync
from nightshift_core.warehouse.types import IdentifierError, check_identifier

REPORT = """
report_id: {report_id}
title: A report
sections:
  - {{name: customers, sql: reports/top_customers.sql, limit: 20}}
email: {{to: [{address}]}}
"""

SYNC = """
dag_id: {dag_id}
source: {{conn_id: src}}
target: {{dataset: sales}}
tables: [{{name: orders, primary_key: id}}]
"""


def test_identifier():
    assert check_identifier("orders") == "orders"
    with pytest.raises(IdentifierError, match=r"invalid identifier 'orders\\n'"):
        check_identifier("orders\n")


def test_subreddit():
    assert check_subreddit("showerthoughts") == "showerthoughts"
    with pytest.raises(ValueError, match=r"'showerthoughts\\n' is not a subreddit name"):
        check_subreddit("showerthoughts\n")


def test_dag_id(tmp_path):
    path = tmp_path / "orders.yaml"
    path.write_text(SYNC.format(dag_id="sync_orders"))
    assert load_sync(path).dag_id == "sync_orders"
    path.write_text(SYNC.format(dag_id='"sync_orders\\n"'))
    with pytest.raises(SyncConfigError, match=r"dag_id 'sync_orders\\n' must use letters"):
        load_sync(path)


def test_settings_entry_name(tmp_path):
    path = tmp_path / "airflow_settings.yaml"
    path.write_text('airflow:\n  connections: [{conn_id: "warehouse", conn_type: duckdb}]\n')
    assert list(load_settings(path, {}).connections) == ["warehouse"]
    path.write_text('airflow:\n  connections: [{conn_id: "warehouse\\n", conn_type: duckdb}]\n')
    with pytest.raises(SettingsError, match="'conn_id' must be a name of letters"):
        load_settings(path, {})


@pytest.mark.parametrize(
    ("report_id", "address", "message"),
    [
        ('"daily\\n"', "a@example.com", r"report_id 'daily\\n' must be lower-case"),
        ("daily", '"a@example.com\\n"', r"email.to: 'a@example.com\\n' is not an e-mail address"),
    ],
)
def test_report_id_and_address(tmp_path, report_id, address, message):
    path = tmp_path / "daily.yaml"
    path.write_text(REPORT.format(report_id="daily", address="a@example.com"))
    assert load_report(path).report_id == "daily"
    path.write_text(REPORT.format(report_id=report_id, address=address))
    with pytest.raises(ReportConfigError, match=message):
        load_report(path)


def test_message_id_of_the_mail_hook():
    from nightshift.hooks.mail import YagmailHook

    # Refused before the hook looks up its connection (none exists here).
    with pytest.raises(ValueError, match=r"message_id '<r1\.2026@nightshift\.test>\\n' must look like"):
        YagmailHook("no_such_connection").send(
            to=["a@example.com"],
            subject="s",
            html="<p>h</p>",
            text="t",
            message_id="<r1.2026@nightshift.test>\n",
        )
