# Databricks notebook source
# MAGIC %md
# MAGIC # Ingest
# MAGIC
# MAGIC Reads MIMIC-III, MIMIC-IV, CodiEsp or the built-in sample into the bronze Delta tables `notes`, `codes`, `code_descriptions` and `quarantine`.
# MAGIC
# MAGIC Set the widgets: a YAML config file of the repository's `conf/` folder (empty for the
# MAGIC defaults) and `key=value` overrides, such as `lakehouse.root=dbfs:/mnt/lakehouse`.

# COMMAND ----------

from shl.notebook import add_config_widgets, config_from_widgets

add_config_widgets(dbutils)

# COMMAND ----------

config = config_from_widgets(dbutils)

# COMMAND ----------

from shl.ingest.job import run_ingest

report = run_ingest(config, spark)
print(report)
