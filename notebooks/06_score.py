# Databricks notebook source
# MAGIC %md
# MAGIC # Score
# MAGIC
# MAGIC Scores documents with a trained model into the gold `predictions` table (`scoring.mode`: `incremental` or `full`).
# MAGIC
# MAGIC Set the widgets: a YAML config file of the repository's `conf/` folder (empty for the
# MAGIC defaults) and `key=value` overrides, such as `lakehouse.root=dbfs:/mnt/lakehouse`.

# COMMAND ----------

from shl.notebook import add_config_widgets, config_from_widgets

add_config_widgets(dbutils)

# COMMAND ----------

config = config_from_widgets(dbutils)

# COMMAND ----------

from shl.scoring.job import run_score

report = run_score(config, spark)
print(report)
