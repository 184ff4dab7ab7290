# Databricks notebook source
# MAGIC %md
# MAGIC # Train
# MAGIC
# MAGIC Trains the coding model with the configured loss (`training.loss`, SHL by default) and
# MAGIC launcher (`training.launcher`: Horovod on the Spark executors, or TorchDistributor). The model
# MAGIC goes to `<training.output_dir>/model` with its per-segment thresholds. A stopped run
# MAGIC resumes from its last epoch checkpoint when started again with the same output folder.
# MAGIC
# MAGIC Set the widgets: a YAML config file of the repository's `conf/` folder (empty for the
# MAGIC defaults) and `key=value` overrides, such as `lakehouse.root=dbfs:/mnt/lakehouse`.

# COMMAND ----------

from shl.notebook import add_config_widgets, config_from_widgets

add_config_widgets(dbutils)

# COMMAND ----------

config = config_from_widgets(dbutils)

# COMMAND ----------

from shl.training.job import run_train

report = run_train(config, spark)
print(report.model_dir, report.best_metric, report.history)
