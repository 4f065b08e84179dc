"""reddit.yaml validation (errors name file, key and fix; shown as the DAG's import error) and
the shape of the reddit_sentiment DAG."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from support.parse_guard import no_io_while_parsing

from nightshift_core.reddit.config import CONFIG_PATH, RedditConfigError, load

ROOT = Path(__file__).resolve().parents[1]
DAG_FILE = ROOT / "dags" / "reddit_sentiment.py"
SHIPPED = yaml.safe_load(CONFIG_PATH.read_text())


def write(tmp_path: Path, **changes) -> Path:
    data = {**SHIPPED, **changes}
    data = {k: v for k, v in data.items() if v is not ...}
    path = tmp_path / "reddit.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_shipped_config_is_valid_and_connection_and_pool_exist_locally():
    config = load()
    settings = yaml.safe_load((ROOT / "airflow_settings.yaml").read_text())["airflow"]
    assert config.conn_id in {c["conn_id"] for c in settings["connections"]}
    assert config.pool in {p["pool_name"] for p in settings["pools"]}
    assert config.schedule == "@hourly" and config.listing == "top" and config.time_filter == "week"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"listng": "top"}, r"unknown key\(s\) \['listng'\]; allowed: "),
        ({"listing": "best"}, r"listing: 'best' is not a Reddit listing; use one of \['top', 'hot', 'new'\]"),
        ({"time_filter": "fortnight"}, r"time_filter: 'fortnight' is not a Reddit time filter"),
        ({"listing": "new", "time_filter": "week"}, r"time_filter: only 'top' takes a time filter"),
        ({"subreddits": ["ok_name", "no spaces"]}, r"subreddits\[1\]: 'no spaces' is not a subreddit name"),
        ({"subreddits": ["r/python"]}, r"subreddits\[0\]: write 'python' without the 'r/' prefix"),
        ({"subreddits": ["_underscore"]}, r"do not start with '_'"),
        ({"subreddits": ["ab"]}, r"3-21 letters"),
        ({"subreddits": ["Python", "python"]}, r"\['python'\] listed twice"),
        ({"subreddits": []}, r"subreddits: list the communities to scrape"),
        ({"limit": 0}, r"limit: must be a whole number from 1 to 1000, got 0"),
        ({"limit": "5"}, r"limit: must be a whole number"),
        ({"replace_more_limit": None}, r"replace_more_limit: must be a whole number from 0 to 100, got None"),
        ({"dataset": "bad-name"}, r"dataset: invalid dataset name"),
    ],
)
def test_bad_config_names_file_key_and_fix(tmp_path, changes, message):
    path = write(tmp_path, **changes)
    with pytest.raises(RedditConfigError, match=message) as info:
        load(path)
    assert str(info.value).startswith(str(path))


def test_bad_config_is_the_dag_import_error(tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("NIGHTSHIFT_REDDIT_CONFIG", str(write(tmp_path, listing="controversial")))
    with no_io_while_parsing():
        bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.dag_ids == []
    (error,) = bag.import_errors.values()
    assert "RedditConfigError" in error and "listing: 'controversial' is not a Reddit listing" in error


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    with no_io_while_parsing():
        bag = DagBag(dag_folder=str(DAG_FILE))
    assert not bag.import_errors, bag.import_errors
    return bag.dags["reddit_sentiment"]


def test_dag_shape(dag):
    assert dag.catchup is False and dag.max_active_runs == 1
    scrape = dag.get_task("scrape")
    assert scrape.partial_kwargs["pool"] == "reddit_api"
    assert dag.get_task("daily_sentiment").upstream_task_ids == {"score_sentiment"}
    assert dag.get_task("score_sentiment").upstream_task_ids == {"scrape"}
    outlets = [a.name for a in dag.get_task("daily_sentiment").outlets]
    assert outlets == ["reddit.daily_sentiment"]


def test_params_validate_subreddit_names_and_limit(dag):
    from airflow.sdk.definitions.param import ParamsDict

    params = ParamsDict(dag.params)
    params["subreddits"] = ["python", "dataengineering"]
    params["limit"] = 3
    params.validate()
    for name, bad in (("subreddits", ["r/python"]), ("subreddits", ["has space"]), ("limit", 0)):
        params = ParamsDict(dag.params)
        with pytest.raises(ValueError):  # noqa: PT011 - ParamValidationError subclasses ValueError
            params[name] = bad


def test_plan_subreddits_uses_the_param_else_the_config(dag):
    plan = dag.get_task("plan_subreddits").python_callable
    assert plan(params={"subreddits": []}) == list(load().subreddits)
    assert plan(params={"subreddits": ["python", "python", "rust"]}) == ["python", "rust"]
    with pytest.raises(ValueError, match="Param subreddits: 'no way' is not a subreddit name"):
        plan(params={"subreddits": ["no way"]})
