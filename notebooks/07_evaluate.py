# Databricks notebook source
# MAGIC %md
# MAGIC # Evaluate
# MAGIC
# MAGIC Computes micro and macro precision, recall and F1, P@k, MAP, AUC and CodiEsp MAP of the
# MAGIC scored `evaluation.split`, overall, per segment and per frequency band, into the gold table
# MAGIC `evaluation`. Score with `scoring.store_probabilities=true` first.
# MAGIC
# MAGIC Set the widgets: a YAML config file of the repository's `conf/` folder (empty for the
# MAGIC defaults) and `key=value` overrides, such as `lakehouse.root=dbfs:/mnt/lakehouse`.

# COMMAND ----------

from shl.notebook import add_config_widgets, config_from_widgets

add_config_widgets(dbutils)

# COMMAND ----------

config = config_from_widgets(dbutils)

# COMMAND ----------

from shl.evaluation.job import run_evaluate

report = run_evaluate(config, spark)
print(report.overall)
