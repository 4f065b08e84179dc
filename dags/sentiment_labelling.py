"""Airflow DAG: people label scraped texts in the UI (include/config/labelling.yaml).

The words "airflow" and "dag" must appear in this file: the dag-processor's safe mode skips
files without them. A bad labelling.yaml is this file's import error, naming the key to fix.
"""

from __future__ import annotations

import os
from pathlib import Path

from airflow.sdk import DAG, Asset

from nightshift.dag_defaults import default_args
from nightshift.operators.labelling import LabelTextsOperator, PickTextsOperator, StoreLabelsOperator
from nightshift_core.ml.labelling import CONFIG_PATH, load

# NIGHTSHIFT_LABELLING_CONFIG points at another definition (tests); read at parse time: a file, no I/O else.
CONFIG = load(Path(os.environ.get("NIGHTSHIFT_LABELLING_CONFIG") or CONFIG_PATH))
WHEN = (
    f"after every update of {', '.join(f'`{a}`' for a in CONFIG.after_assets)}"
    if CONFIG.after_assets
    else f"`{CONFIG.schedule}`"
)
WHO = (
    ", ".join([u["id"] for u in CONFIG.assigned_users] + [f"role {r}" for r in CONFIG.assigned_roles])
    or "anyone who may act on this DAG"
)

DOC = f"""
### Labelling in the UI

Runs {WHEN}, one at a time (definition: `include/config/{CONFIG.path.name}`):

1. `pick_texts` picks the {CONFIG.items} texts of `{CONFIG.texts_dataset}` scored in the last
   {CONFIG.lookback_days} days where a label helps most -- the scorers disagree, the champion is least
   sure, the words are new to every label -- one per distinct text, none already in
   `{CONFIG.dataset}.labels`, spread across subreddits;
2. `label_texts` waits under **Required Actions** for one person ({WHO}) to label them in one form:
   positive / neutral / negative / skip. The texts are shown as plain text. Unanswered after
   {CONFIG.response_timeout_hours:g} hours, the request closes with every text skipped;
3. `store_labels` merges the answers into `{CONFIG.dataset}.labels` (source `airflow-ui`, `labelled_by`
   the login that answered, `labelled_at` when); skips are not stored. The next `sentiment_retrain`
   counts them as new labels, and the frozen evaluation set takes its share by the text-hash rule.

The texts and the answer are recorded in `{CONFIG.dataset}.label_requests`, and the labels are made
from that record: an edited XCom of `pick_texts` or `label_texts` fails the task and stores nothing.
"""

with DAG(
    dag_id=CONFIG.dag_id,
    description=CONFIG.description,
    schedule=[Asset(name=name) for name in CONFIG.after_assets] or CONFIG.schedule,
    start_date=CONFIG.start_date,
    catchup=False,
    max_active_runs=1,  # one open request at a time: the next starts once it is answered or closed
    tags=list(CONFIG.tags),
    doc_md=DOC,
    default_args=default_args(),
) as dag:
    pick = PickTextsOperator(task_id="pick_texts", config=CONFIG)
    ask = LabelTextsOperator(task_id="label_texts", config=CONFIG)
    store = StoreLabelsOperator(task_id="store_labels", config=CONFIG)
    pick >> ask >> store
