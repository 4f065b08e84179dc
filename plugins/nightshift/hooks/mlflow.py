"""MlflowRegistryHook: the ``mlflow_default`` connection -> MLflow tracking + model registry.

Connection extras (read by name):

``tracking_uri``       where runs and the registry live: ``sqlite:////path/mlflow.db`` (embedded
                       default), ``postgresql://user@host/db``, or an MLflow server ``https://...``
``registry_uri``       optional, defaults to ``tracking_uri``
``artifact_location``  where new experiments keep artifacts: a folder every worker sees, or
                       ``gs://bucket/prefix`` in production

Registry semantics: every trained challenger becomes a model version; the alias ``champion``
is what scoring loads and ``rollback`` is the champion before it. On a fresh registry the first
champion is the rule baseline itself (VADER, its package version and lexicon digest recorded),
registered by :meth:`MlflowRegistryHook.ensure_champion`, so there is always a champion and
every scored row names the model version that scored it. Models are read from their
artifact files (``state_dict`` + JSON), never unpickled, and cached per worker process by
(tracking URI, model, version), so a scoring task pays the load once per new champion.
"""

from __future__ import annotations

import contextlib
import threading
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook
from filelock import FileLock

from nightshift_core.errors import PermanentError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from nightshift_core.ml.model import SentimentModel

CHAMPION, ROLLBACK = "champion", "rollback"
RUN_KEY_TAG = "nightshift.run_key"
KIND_TAG = "nightshift.kind"
BASELINE_RUN_KEY = "nightshift/rules-baseline"
EPOCH = "1970-01-01T00:00:00+00:00"
MODEL_ARTIFACT = "model"
_CACHE: dict[tuple[str, str, str], SentimentModel] = {}
_CACHE_LOCK = threading.Lock()


def _sqlite_init_lock(uri: str) -> contextlib.AbstractContextManager[object]:
    """Serialise the first use of a SQLite store across processes: two workers creating
    MLflow's tables at the same moment would trip over each other. Waits as long as it takes."""
    if not uri.startswith("sqlite:///"):
        return contextlib.nullcontext()
    path = Path(uri.removeprefix("sqlite:///") + ".init-lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(path)


def _mask_url_password(uri: Any) -> None:
    """Register the password of a store URI (``postgresql://user:password@host/db``) with Airflow's
    secrets masker, as it is written in the URI and decoded: the extra's key name is not one Airflow
    masks by itself, so a log line with the URI would show it."""
    from urllib.parse import unquote, urlsplit

    from airflow.sdk.log import mask_secret

    if not uri or "://" not in str(uri):
        return
    password = urlsplit(str(uri)).password
    if password:
        mask_secret(password)
        mask_secret(unquote(password))


class MlflowConfigError(ValueError, PermanentError):
    """The MLflow connection is incomplete; the message names the key to set."""


class MlflowRegistryHook(BaseHook):
    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "mlflow_default"
    conn_type = "generic"
    hook_name = "Nightshift MLflow registry"

    def __init__(self, mlflow_conn_id: str = default_conn_name, model_name: str = "sentiment") -> None:
        super().__init__()
        self.mlflow_conn_id = mlflow_conn_id
        self.model_name = model_name

    @cached_property
    def extra(self) -> dict[str, Any]:
        extra = self.get_connection(self.mlflow_conn_id).extra_dejson
        for key in ("tracking_uri", "registry_uri"):
            _mask_url_password(extra.get(key))
        return extra

    def _require(self, name: str, example: str) -> str:
        value = self.extra.get(name)
        if not value:
            raise MlflowConfigError(
                f"connection {self.mlflow_conn_id!r}: set extra {name!r} (e.g. {example})"
            )
        return str(value)

    @property
    def tracking_uri(self) -> str:
        return self._require("tracking_uri", '"sqlite:////data/mlflow.db" or "postgresql://mlflow@db/mlflow"')

    @cached_property
    def client(self) -> MlflowClient:
        from mlflow import MlflowClient

        return MlflowClient(
            tracking_uri=self.tracking_uri, registry_uri=self.extra.get("registry_uri") or None
        )

    def get_conn(self) -> MlflowClient:
        return self.client

    @cached_property
    def experiment_id(self) -> str:
        """The experiment named like the model, created (with the connection's artifact location) once."""
        from mlflow.exceptions import MlflowException

        experiment = self.client.get_experiment_by_name(self.model_name)
        if experiment is not None:
            return experiment.experiment_id
        location = self._require("artifact_location", '"/data/mlflow-artifacts" or "gs://bucket/mlflow"')
        if "://" not in location:
            Path(location).mkdir(parents=True, exist_ok=True)
        try:
            return self.client.create_experiment(self.model_name, artifact_location=location)
        except MlflowException:  # another worker created it first
            return self.client.get_experiment_by_name(self.model_name).experiment_id

    # -- runs -----------------------------------------------------------------------------
    def find_run(self, run_key: str) -> Any | None:
        """The MLflow run an earlier try of the same Airflow task run made, if any."""
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{RUN_KEY_TAG}` = '{run_key}'", max_results=1
        )
        return runs[0] if runs else None

    def start_run(self, run_key: str, tags: dict[str, str]) -> str:
        run = self.client.create_run(
            self.experiment_id, run_name=run_key, tags={RUN_KEY_TAG: run_key, **tags}
        )
        return run.info.run_id

    def download(self, run_id: str, path: str, destination: Path | None = None) -> Path:
        """A run's artifact as a local path (local artifact stores are read in place)."""
        import mlflow

        uri = f"{self.client.get_run(run_id).info.artifact_uri}/{path}"
        if destination is not None:
            destination.mkdir(parents=True, exist_ok=True)
        return Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=uri, dst_path=str(destination) if destination else None
            )
        )

    # -- registry -------------------------------------------------------------------------
    def register(self, run_id: str, tags: dict[str, str]) -> ModelVersion:
        """The model version of ``run_id``, registering it if an earlier try has not."""
        from mlflow.exceptions import MlflowException

        found = self.client.search_model_versions(f"name = '{self.model_name}' and run_id = '{run_id}'")
        if found:
            return found[0]
        try:
            self.client.create_registered_model(self.model_name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        source = f"{self.client.get_run(run_id).info.artifact_uri}/{MODEL_ARTIFACT}"
        return self.client.create_model_version(self.model_name, source, run_id, tags=tags)

    def version(self, alias: str) -> ModelVersion | None:
        """The version behind ``alias``, or ``None`` when the alias (or the model) does not exist."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version_by_alias(self.model_name, alias)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                return None
            raise

    def set_aliases(self, aliases: dict[str, str | None]) -> None:
        """Point each alias at a version (``None`` removes it). ``rollback`` is written before
        ``champion``: a crash in between leaves the old champion serving, and a retry finishes."""
        for alias in sorted(aliases, key=lambda a: a == CHAMPION):
            version = aliases[alias]
            if version is None:
                if self.version(alias) is not None:
                    self.client.delete_registered_model_alias(self.model_name, alias)
            else:
                self.client.set_registered_model_alias(self.model_name, alias, str(version))

    def ensure_champion(self) -> ModelVersion:
        """The ``champion`` version; on a registry without one, the rule baseline is registered
        as a model version (once: a retry or a second worker finds the same run) and made champion."""
        current = self.version(CHAMPION)
        if current is not None:
            return current
        import tempfile

        from nightshift_core.ml.model import RuleModel

        with _sqlite_init_lock(self.tracking_uri + ".baseline"):
            current = self.version(CHAMPION)
            if current is not None:
                return current
            rules = RuleModel()
            run = self.find_run(BASELINE_RUN_KEY)
            if run is None:
                run_id = self.start_run(BASELINE_RUN_KEY, {KIND_TAG: rules.kind, "rule": rules.rule_version})
                with tempfile.TemporaryDirectory() as tmp:
                    rules.save(Path(tmp) / MODEL_ARTIFACT)
                    self.client.log_artifacts(run_id, str(Path(tmp) / MODEL_ARTIFACT), MODEL_ARTIFACT)
                self.client.log_param(run_id, "rule", rules.rule_version)
                self.client.set_terminated(run_id)
            else:
                run_id = run.info.run_id
            version = self.register(
                run_id,
                {KIND_TAG: rules.kind, "nightshift.rule": rules.rule_version,
                 "nightshift.labels_as_of": EPOCH, "nightshift.decision": "baseline",
                 "nightshift.reason": "the rule baseline is the first champion; a challenger replaces it "
                                      "only through the gate"},
            )  # fmt: skip
            if self.version(CHAMPION) is None:
                self.client.set_registered_model_alias(self.model_name, CHAMPION, str(version.version))
            return self.version(CHAMPION)

    def tag_version(self, version: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(self.model_name, str(version), key, value)

    # -- models ---------------------------------------------------------------------------
    def load_version(self, version: ModelVersion, *, cached: bool = True) -> SentimentModel:
        """The saved model of ``version``, from this process's cache when it has it."""
        import mlflow

        from nightshift_core.ml.model import SentimentModel

        key = (self.tracking_uri, self.model_name, str(version.version))
        with _CACHE_LOCK:
            if cached and key in _CACHE:
                return _CACHE[key]
        folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=version.source))
        model = SentimentModel.load(folder, name=self.model_name, version=str(version.version))
        with _CACHE_LOCK:
            _CACHE[key] = model
        return model

    def load_alias(self, alias: str = CHAMPION, *, cached: bool = True) -> SentimentModel | None:
        """The model behind ``alias`` (``None`` while there is none; for ``champion``, the rule
        baseline is registered first when the registry has no champion yet)."""
        version = self.ensure_champion() if alias == CHAMPION else self.version(alias)
        return None if version is None else self.load_version(version, cached=cached)
