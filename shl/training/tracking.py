"""MLflow tracking of a training run: parameters, per-epoch metrics and the model folder.

By default runs go to a local file store, ``file://<lakehouse.root>/mlruns``. MLflow 3
keeps that backend in maintenance mode and raises unless ``MLFLOW_ALLOW_FILE_STORE``
is ``true``, so this module sets that variable (when unset) for ``file:`` URIs only.
A database URI (``sqlite:///...``) or a server (``http://...``, ``databricks``) is used
as given.

The run id is stored in ``<output_dir>/mlflow_run_id``, so a resumed run logs into
the MLflow run it started.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Mapping
from typing import Any

from shl.config import Config, ConfigError

logger = logging.getLogger(__name__)

RUN_ID_FILE = "mlflow_run_id"
# MLflow rejects parameter values longer than this.
MAX_PARAM_LENGTH = 6000


def tracking_uri(config: Config) -> str:
    """Return the configured tracking URI, or the file store under the lakehouse root.

    Raises
    ------
    ConfigError
        If the URI is not set and the lakehouse root is a URL other than ``file:``,
        where no local file store can be made.
    """
    if config.training.mlflow_tracking_uri:
        return config.training.mlflow_tracking_uri
    root = config.lakehouse.root.rstrip("/")
    if root.startswith("file:"):
        return f"{root}/mlruns"
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", root):
        raise ConfigError(
            f"training.mlflow_tracking_uri is empty and lakehouse.root {root!r} is not a local folder; set "
            "training.mlflow_tracking_uri, for example to databricks or sqlite:////dbfs/mlflow/mlflow.db"
        )
    return "file://" + os.path.join(os.path.abspath(root), "mlruns")


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten nested settings to ``{"a.b": "value"}`` strings for MLflow parameters."""
    flat: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, prefix=f"{name}."))
        else:
            flat[name] = str(value)[:MAX_PARAM_LENGTH]
    return flat


class RunTracker:
    """One MLflow run of a training job, logged through ``MlflowClient``.

    Parameters
    ----------
    config : Config
    output_dir : str
        The run folder, where the MLflow run id is kept for resuming.
    """

    def __init__(self, config: Config, output_dir: str) -> None:
        from mlflow.tracking import MlflowClient

        self.uri = tracking_uri(config)
        if self.uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(self.uri)
        self.output_dir = output_dir
        experiment = self.client.get_experiment_by_name(config.training.experiment_name)
        experiment_id = (
            experiment.experiment_id if experiment is not None
            else self.client.create_experiment(config.training.experiment_name)
        )
        self.run_id = self._existing_run_id() or self._new_run(experiment_id)
        logger.info("MLflow run %s in experiment %r at %s", self.run_id, config.training.experiment_name, self.uri)

    def _existing_run_id(self) -> str | None:
        path = os.path.join(self.output_dir, RUN_ID_FILE)
        if not os.path.isfile(path):
            return None
        with open(path, encoding="utf-8") as handle:
            run_id = handle.read().strip()
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_run(run_id)
        except MlflowException:
            logger.warning("MLflow run %s named in %s not found at %s; starting a new run", run_id, path, self.uri)
            return None
        self.client.update_run(run_id, status="RUNNING")
        return run_id

    def _new_run(self, experiment_id: str) -> str:
        run = self.client.create_run(experiment_id, run_name=os.path.basename(self.output_dir.rstrip("/")))
        os.makedirs(self.output_dir, exist_ok=True)
        with open(os.path.join(self.output_dir, RUN_ID_FILE), "w", encoding="utf-8") as handle:
            handle.write(run.info.run_id + "\n")
        return run.info.run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log parameters; a parameter already logged with the same value is skipped."""
        from mlflow.entities import Param

        logged = self.client.get_run(self.run_id).data.params
        fresh = [Param(key, value) for key, value in flatten(params).items() if logged.get(key) != value]
        changed = [param.key for param in fresh if param.key in logged]
        if changed:
            # MLflow parameters cannot change; the value of the first start is kept.
            logger.warning("MLflow parameters differ from those the run started with and are not logged again: %s", changed[:10])
        fresh = [param for param in fresh if param.key not in logged]
        for start in range(0, len(fresh), 100):
            self.client.log_batch(self.run_id, params=fresh[start : start + 100])

    def log_epochs(self, history: list[Mapping[str, Any]], first_epoch: int = 1) -> None:
        """Log the numeric values of each history entry from ``first_epoch`` on, with step = epoch."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [
            Metric(key, float(value), now, int(entry["epoch"]))
            for entry in history
            if int(entry["epoch"]) >= first_epoch
            for key, value in entry.items()
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool)
        ]
        for start in range(0, len(metrics), 500):
            self.client.log_batch(self.run_id, metrics=metrics[start : start + 500])

    def log_metrics(self, values: Mapping[str, float]) -> None:
        """Log run-level numbers, such as the best validation micro-F1."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(key, float(value), now, 0) for key, value in values.items()])

    def log_model_folder(self, folder: str) -> None:
        """Copy the saved model folder to the run's artifacts under ``model``."""
        self.client.log_artifacts(self.run_id, folder, artifact_path="model")

    def finish(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)
