# Databricks notebook source
# MAGIC %md
# MAGIC # Report
# MAGIC
# MAGIC Writes the HTML report of the evaluated model, with its plots, to
# MAGIC `<evaluation.report_dir>/<model version>/report.html` (default under `<lakehouse.root>/gold/reports`;
# MAGIC on Databricks set `evaluation.report_dir` to a `/dbfs/...` or `/Volumes/...` path).
# MAGIC
# MAGIC Set the widgets: a YAML config file of the repository's `conf/` folder (empty for the
# MAGIC defaults) and `key=value` overrides, such as `lakehouse.root=dbfs:/mnt/lakehouse`.

# COMMAND ----------

from shl.notebook import add_config_widgets, config_from_widgets

add_config_widgets(dbutils)

# COMMAND ----------

config = config_from_widgets(dbutils)

# COMMAND ----------

from shl.report.job import run_report

report = run_report(config, spark)
print(f"Report: {report.path}")
