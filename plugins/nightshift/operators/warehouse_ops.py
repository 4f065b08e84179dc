"""Operators that work inside the warehouse: quality gates and SQL-built tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from nightshift.operators._fail_fast import fail_fast

if TYPE_CHECKING:
    from airflow.sdk import Context


KEY_CHECKS_PER_QUERY = 50  # tables whose primary keys one query of the quality gate checks


class SyncQualityGateOperator(BaseOperator):
    """Fail (without retries) when a synced table breaks its contract.

    For each load result (the return value of :class:`SqlToWarehouseOperator`): staged rows
    equal the source's count for the same window (within ``tolerance``, for sources that
    change while being read), and the target's primary key is never NULL and unique. Where the
    load reconciled, a check that does not share the window: the warehouse's rows with a cursor
    before the window's end equal the source's count of them (at least, without
    ``detect_deletes``: rows deleted in the source stay). Repairs are reported as warnings.
    """

    template_fields: Sequence[str] = ("load_results",)

    def __init__(
        self,
        *,
        load_results: Any,
        primary_keys: Mapping[str, Sequence[str]],
        cursors: Mapping[str, str] | None = None,
        tolerance: float = 0.0,
        warehouse_conn_id: str = "nightshift_warehouse",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.load_results = load_results
        self.primary_keys = {k: list(v) for k, v in primary_keys.items()}
        self.cursors = dict(cursors or {})
        self.tolerance = tolerance
        self.warehouse_conn_id = warehouse_conn_id

    @fail_fast
    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from nightshift.hooks.warehouse import WarehouseHook
        from nightshift_core.warehouse.types import check_identifier

        problems, checked, repaired = [], [], {}
        results = [r for r in (self.load_results or []) if r]
        # every check in one opening of the warehouse
        with WarehouseHook(self.warehouse_conn_id).get_conn() as warehouse, warehouse.session():
            key_counts = self._key_counts(warehouse, [r["target"] for r in results])
            for result in results:
                target = result["target"]
                staged, expected = result["staged_rows"], result["source_rows"]
                if abs(staged - expected) > self.tolerance * max(staged, expected):
                    problems.append(
                        f"{target}: loaded {staged} rows but the source has {expected} for window {result['window']}"
                    )
                keys = [check_identifier(k) for k in self.primary_keys[target]]
                if not keys:  # a keyless table (mode: full, primary_key: []): no key to check
                    checked.append(target)
                    continue
                counts = key_counts[target]
                if counts["null_keys"] or counts["duplicate_keys"]:
                    problems.append(
                        f"{target}: primary key {keys} has {counts['null_keys']} NULL and "
                        f"{counts['duplicate_keys']} duplicated value(s)"
                    )
                reconciled = result.get("reconciled")
                if reconciled:
                    problems += self._check_reconciled(warehouse, target, result, reconciled)
                    if reconciled["repaired"]:
                        repaired[target] = reconciled["repaired"]
                checked.append(target)
        summary = "; ".join(
            f"{target}: {count} row(s) missing or stale after the incremental window, repaired by the "
            "reconciliation (keys in the load task's log)"
            for target, count in repaired.items()
        )
        if summary:
            self.log.warning("%s", summary)
        if problems:
            also = f"\n(also: {summary})" if summary else ""
            raise AirflowFailException("quality gate failed:\n- " + "\n- ".join(problems) + also)
        if summary:
            self._warn_by_mail(context, summary, sum(repaired.values()))
        return {"checked": checked, "repaired": repaired}

    def _key_counts(self, warehouse, targets: Sequence[str]) -> dict[str, dict[str, int]]:
        """NULL and duplicated primary-key values of each keyed target: the tables' checks joined into a
        query per KEY_CHECKS_PER_QUERY of them, not one each (a query job each, on BigQuery)."""
        from nightshift_core.warehouse.types import TableRef, check_identifier

        keyed = [t for t in dict.fromkeys(targets) if self.primary_keys[t]]
        counts: dict[str, dict[str, int]] = {}
        for first in range(0, len(keyed), KEY_CHECKS_PER_QUERY):
            checks = []
            for i, target in enumerate(keyed[first : first + KEY_CHECKS_PER_QUERY], first):
                keys = [check_identifier(k) for k in self.primary_keys[target]]
                # quoted (BigQuery's backticks, which the engines read): a table `select`, a key `from`
                cols = ", ".join(f"`{k}`" for k in keys)
                nulls = " OR ".join(f"`{k}` IS NULL" for k in keys)
                ref = TableRef.parse(target)
                table = f"`{ref.dataset}`.`{ref.table}`"
                checks.append(
                    f"SELECT {i} AS i, (SELECT COUNT(*) FROM {table} WHERE {nulls}) AS null_keys, "  # noqa: S608
                    f"(SELECT COUNT(*) FROM (SELECT {cols} FROM {table} GROUP BY {cols} "
                    "HAVING COUNT(*) > 1) AS d) AS duplicate_keys"
                )
            for row in warehouse.query(" UNION ALL ".join(checks)).to_pylist():
                counts[keyed[row["i"]]] = row
        return counts

    def _warn_by_mail(self, context: Context, summary: str, count: int) -> None:
        """A repair is a warning the team should see: one e-mail to the alert recipients."""
        import dataclasses

        from nightshift.notifiers.email import AlertConfigError, FailureEmailNotifier, alert_from_context

        alert = dataclasses.replace(alert_from_context(context), error=summary)
        subject = f"[nightshift] WARNING {alert.dag_id}: reconciliation repaired {count} row(s)"
        try:
            FailureEmailNotifier().send(alert, subject=subject)
        except AlertConfigError as exc:  # the repair itself is done; say why nobody was told
            self.log.warning("repair warning not e-mailed: %s", exc)

    def _check_reconciled(self, warehouse, target: str, result: Mapping[str, Any], reconciled) -> list[str]:
        """The whole table before the window's end, counted in the warehouse against the source."""
        import datetime as dt

        from nightshift_core.warehouse.types import DELETED_COLUMN, TableRef, check_identifier

        cursor = self.cursors.get(target) or (result.get("window") or {}).get("cursor")
        if not cursor:
            return []
        conditions, params = [], {}
        if reconciled.get("before") is not None:
            conditions.append(f"`{check_identifier(cursor)}` < @before")
            params["before"] = dt.datetime.fromisoformat(reconciled["before"])
        columns = {c.name for c in warehouse.get_schema(TableRef.parse(target))}
        if DELETED_COLUMN in columns:
            conditions.append(f"{DELETED_COLUMN} IS NULL")
        ref = TableRef.parse(target)  # validated identifiers only
        where = " WHERE " + " AND ".join(conditions) if conditions else ""
        sql = f"SELECT COUNT(*) AS n FROM `{ref.dataset}`.`{ref.table}`{where}"  # noqa: S608
        have = warehouse.query(sql, params or None).to_pylist()[0]["n"]
        want = reconciled["source_rows"]
        exact = bool(result.get("detect_deletes"))
        if (have != want) if exact else (have < want):
            before = reconciled.get("before") or "now"
            return [
                f"{target}: after reconciliation the warehouse holds {have} live row(s) with {cursor} before "
                f"{before} but the source has {want}{'' if exact else ' (or fewer)'}"
            ]
        return []


class WarehouseQueryToTableOperator(BaseOperator):
    """Run ``include/sql/<sql>`` (BigQuery SQL) in the warehouse and replace ``target`` with the result."""

    def __init__(
        self,
        *,
        sql: str,
        target: str,
        shape: Mapping[str, Any] | None = None,
        params_sql: Mapping[str, Any] | None = None,
        warehouse_conn_id: str = "nightshift_warehouse",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sql = sql
        self.target = target
        self.shape = dict(shape or {})
        self.params_sql = dict(params_sql or {})
        self.warehouse_conn_id = warehouse_conn_id

    @fail_fast
    def execute(self, context: Context) -> dict[str, Any]:
        from nightshift.hooks.warehouse import WarehouseHook, job_key
        from nightshift_core.warehouse import TableRef
        from nightshift_core.warehouse.sql import render

        target = TableRef.parse(self.target)
        with WarehouseHook(self.warehouse_conn_id).get_conn() as warehouse:
            table = warehouse.query(render(self.sql, **self.shape), self.params_sql)
            staged = warehouse.stage(job_key(context), target, table.to_batches(), table.schema)
            result = warehouse.publish(staged, "replace")
        return {"target": str(target), "rows": result.staged_rows}
