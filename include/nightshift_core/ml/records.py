"""Warehouse tables of the retraining job."""

from __future__ import annotations

import pyarrow as pa

LABEL_SCHEMA = pa.schema(
    [
        pa.field("example_id", pa.string(), nullable=False),  # "<file stem>:<id>"
        ("text", pa.string()),
        ("label", pa.string()),  # positive | negative | neutral
        ("rating", pa.float64()),  # -1..1 where the labeller gave one
        ("source", pa.string()),  # the label file's name, or "airflow-ui" for a label given in the UI
        ("first_seen_at", pa.timestamp("us", tz="UTC")),  # run time of the load that first saw it
        ("labelled_by", pa.string()),  # the Airflow user who answered the labelling request (UI labels)
        ("labelled_at", pa.timestamp("us", tz="UTC")),  # when they answered it (UI labels)
    ]
)

CHECK_SCHEMA = pa.schema(
    [
        pa.field("run_key", pa.string(), nullable=False),  # "<dag_id>/<run_id>"
        ("checked_at", pa.timestamp("us", tz="UTC")),
        ("champion_version", pa.string()),
        ("human_labels", pa.int64()),
        ("new_labels", pa.int64()),
        ("recent_texts", pa.int64()),
        ("length_psi", pa.float64()),
        ("score_psi", pa.float64()),
        ("unseen_share", pa.float64()),
        ("champion_f1", pa.float64()),  # the champion's weighted F1 when it was promoted
        ("recent_f1", pa.float64()),  # ... and on labels newer than it
        ("drifted", pa.bool_()),
        ("decision", pa.string()),  # train | skip
        ("reason", pa.string()),
    ]
)

# One row per text of a labelling request: what pick_texts picked and label_texts got answered,
# in the warehouse, whose connection only Admin reaches (XComs can be edited over the REST API).
LABEL_REQUEST_SCHEMA = pa.schema(
    [
        pa.field("request", pa.string(), nullable=False),  # "<dag_id>/<run_id>"
        pa.field("field", pa.string(), nullable=False),  # the form's Param name, "text_01" ...
        ("key", pa.string()),  # text_key(text)[:16]; the label's example_id is "ui:<key>"
        ("text_id", pa.string()),
        ("subreddit", pa.string()),
        ("kind", pa.string()),
        ("text", pa.string()),
        ("priority", pa.float64()),
        ("reasons", pa.string()),  # JSON: reason -> number in [0, 1]
        ("picked_at", pa.timestamp("us", tz="UTC")),
        ("answer", pa.string()),  # positive | neutral | negative | skip; NULL until answered
        ("answered_by_id", pa.string()),  # the responding user's id (NULL: the request timed out)
        ("answered_by_name", pa.string()),
        ("answered_at", pa.timestamp("us", tz="UTC")),  # from the HITL record Airflow resumed the task with
    ]
)
