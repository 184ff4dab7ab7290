# Databricks notebook source
# MAGIC %md
# MAGIC # Overview: the whole pipeline
# MAGIC
# MAGIC Runs every stage in order: ingest, tokenize, label-stats, dedup-noise, train, score,
# MAGIC evaluate and report. Each stage has its own notebook (01 to 08) for running it alone.
# MAGIC Leave stages out with the override `pipeline.skip=[ingest,tokenize]`: the skipped stages'
# MAGIC tables from an earlier run are read as they are, so a run that stopped goes on from the
# MAGIC stage that failed.
# MAGIC
# MAGIC Set the widgets: a YAML config file of the repository's `conf/` folder (empty for the
# MAGIC defaults) and `key=value` overrides, such as `lakehouse.root=dbfs:/mnt/lakehouse`.

# COMMAND ----------

from shl.notebook import add_config_widgets, config_from_widgets

add_config_widgets(dbutils)

# COMMAND ----------

config = config_from_widgets(dbutils)

# COMMAND ----------

from shl.pipeline import run_pipeline

report = run_pipeline(config, spark)
print({stage: round(seconds, 1) for stage, seconds in report.seconds.items()})
print(f"Report: {report.report_path}")
