# Databricks notebook source
# MAGIC %md
# MAGIC # Documents and tokens
# MAGIC
# MAGIC Builds the silver tables `documents`, `label_index` and `tokens` from the bronze tables.
# MAGIC
# MAGIC Set the widgets: a YAML config file of the repository's `conf/` folder (empty for the
# MAGIC defaults) and `key=value` overrides, such as `lakehouse.root=dbfs:/mnt/lakehouse`.

# COMMAND ----------

from shl.notebook import add_config_widgets, config_from_widgets

add_config_widgets(dbutils)

# COMMAND ----------

config = config_from_widgets(dbutils)

# COMMAND ----------

from shl.documents.job import run_tokenize

report = run_tokenize(config, spark)
print(report)
