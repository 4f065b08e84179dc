"""Airflow DAG: nightly sentiment model retraining (include/config/retrain.yaml).

The words "airflow" and "dag" must appear in this file: the dag-processor's safe mode skips
files without them. A bad retrain.yaml is this file's import error, naming the key to fix.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from airflow.sdk import DAG, Param, task
from airflow.task.trigger_rule import TriggerRule

from nightshift.dag_defaults import default_args
from nightshift.operators.retrain import (
    EvaluateSentimentModelsOperator,
    LabelsToWarehouseOperator,
    PromoteSentimentModelOperator,
    RetrainPlanOperator,
    RetrainReportEmailOperator,
    RollbackSentimentModelOperator,
    TrainSentimentModelOperator,
)
from nightshift_core.ml.config import CONFIG_PATH, load

# NIGHTSHIFT_RETRAIN_CONFIG points at another definition (tests); read at parse time: a file, no I/O else.
CONFIG = load(Path(os.environ.get("NIGHTSHIFT_RETRAIN_CONFIG") or CONFIG_PATH))

DOC = f"""
### Nightly sentiment retraining

`{CONFIG.schedule}` (definition: `include/config/{CONFIG.path.name}`), torch tasks on Celery queue `{CONFIG.queue}`:

1. `load_labels` merges the human label files (`{CONFIG.labels.path}`, or `$NIGHTSHIFT_LABELS_DIR`,
   plus the categorical tweet file `{CONFIG.labels.tweets.path if CONFIG.labels.tweets else "-"}` in that folder)
   into `{CONFIG.dataset}.labels`;
2. `plan` counts labels new since the champion and checks drift (recent `{CONFIG.texts_dataset}` texts vs
   the champion's training texts; the champion's F1 on new labels), records it in
   `{CONFIG.dataset}.retrain_checks` and decides: fewer than {CONFIG.retrain_when.min_new_labels} new labels and no drift
   skips training (the reason is in the task log and the table);
3. `train` fits a challenger (PyTorch, fixed seed: VADER's rule as the prior, plus learned corrections
   from a pruned vocabulary that shrink to zero for rare or unseen words) on human labels outside the
   frozen evaluation set plus capped weak labels, and registers it in MLflow (`{CONFIG.model_name}`,
   connection `{CONFIG.mlflow_conn_id}`);
4. `evaluate` scores the frozen evaluation set with challenger, champion, VADER and TextBlob, and the
   out-of-domain check sets (`{CONFIG.gate.check_set}`, and the seeded split of the tweet file that is never
   trained on) with challenger, VADER and TextBlob;
5. `promote` ships the challenger as `champion` (the old one becomes `rollback`) only when its weighted
   F1 beats the champion by {CONFIG.gate.min_f1_gain:g}, it scores within its time budget (gate.max_vader_ratio
   {CONFIG.gate.max_vader_ratio} times VADER's time, measured in the same task) **and**
   it is not below VADER on any check set (weighted F1, and Pearson r where rated; a missing one is
   named in the decision and not checked) nor in weighted F1 on any label file's part of the frozen set;
   a canary then loads and exercises it, rolling back on any error;
6. `notify` e-mails the metrics table and the decision to `nightshift_alert_to`.

The registry always has a champion: on a fresh install it is the rule baseline itself (VADER,
registered as version 1 with its package version), so Reddit rows always carry the `model_version`
that scored them. The champion of the latest run is named in that run's note and e-mail.

Params: `force` trains regardless, `epochs`/`seed` override the config, `action: rollback` swaps
`champion` and `rollback` instead of training.
"""

with DAG(
    dag_id=CONFIG.dag_id,
    description=CONFIG.description,
    schedule=CONFIG.schedule,
    start_date=CONFIG.start_date,
    catchup=False,
    max_active_runs=1,
    tags=list(CONFIG.tags),
    doc_md=DOC,
    default_args=default_args(execution_timeout=timedelta(hours=1)),
    params={
        "action": Param(
            "train",
            enum=["train", "rollback"],
            title="Action",
            description="train: the nightly flow; rollback: make the previous champion the champion again.",
        ),
        "force": Param(
            False, type="boolean", title="Force", description="Train even without new labels or drift."
        ),
        "epochs": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=100,
            title="Epochs",
            description=f"Training epochs (empty: {CONFIG.model.epochs} from the config).",
        ),
        "seed": Param(
            None,
            type=["null", "integer"],
            minimum=0,
            title="Seed",
            description=f"Random seed (empty: {CONFIG.model.seed}); same data and seed give the same model.",
        ),
    },
) as dag:

    @task.branch
    def choose_action(params: dict | None = None) -> str:
        """``rollback`` when the run asks for it, else the training flow."""
        return "rollback" if (params or {}).get("action") == "rollback" else "load_labels"

    common = {"config": CONFIG}
    ml = {**common, "queue": CONFIG.queue}
    load_labels = LabelsToWarehouseOperator(task_id="load_labels", **common)
    plan = RetrainPlanOperator(task_id="plan", **common)
    train = TrainSentimentModelOperator(task_id="train", **ml)
    evaluate = EvaluateSentimentModelsOperator(task_id="evaluate", **ml)
    promote = PromoteSentimentModelOperator(task_id="promote", **ml)
    rollback = RollbackSentimentModelOperator(task_id="rollback", **ml)
    notify = RetrainReportEmailOperator(
        task_id="notify",
        to="{{ var.value.get('nightshift_alert_to', '') }}",
        model_name=CONFIG.model_name,
        trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,
    )
    choose_action() >> [load_labels, rollback]
    load_labels >> plan >> train >> evaluate >> promote >> notify
    rollback >> notify
