"""Answering the labelling DAG's human-in-the-loop requests through the REST API v2, as a
labeller's script would: list the open requests, send one response per request."""

from __future__ import annotations

from typing import Any

DAG_ID = "sentiment_labelling"
TASK_ID = "label_texts"
OPEN = f"/api/v2/dags/{DAG_ID}/dagRuns/~/hitlDetails?response_received=false"


def open_requests(client: Any) -> list[dict[str, Any]]:
    """The labelling requests waiting for an answer (task in ``awaiting_input``)."""
    details = client.get(OPEN)["hitl_details"]
    return [d for d in details if d["task_instance"]["state"] == "awaiting_input"]


def answer(client: Any, request: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    """Respond to ``request``: ``labels`` (field -> answer), every other field skipped."""
    ti = request["task_instance"]
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{ti['dag_run_id']}/taskInstances/{ti['task_id']}/{ti['map_index']}/hitlDetails"
    answers = {name: "skip" for name in request["params"]} | labels
    return client.patch(path, {"chosen_options": ["OK"], "params_input": answers})


def first_field_positive(request: dict[str, Any]) -> dict[str, str]:
    return {sorted(request["params"])[0]: "positive"}
