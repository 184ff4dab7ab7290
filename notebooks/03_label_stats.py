# Databricks notebook source
# MAGIC %md
# MAGIC # Label statistics and segments
# MAGIC
# MAGIC Computes label statistics, co-occurrence and the label segments of SHL from the train split
# MAGIC into the gold tables `label_stats`, `cooccurrence`, `segments` and `imbalance`, and draws the
# MAGIC long-tail plot to `<lakehouse.root>/gold/reports/long_tail.png` when the root is a file path.
# MAGIC
# MAGIC Set the widgets: a YAML config file of the repository's `conf/` folder (empty for the
# MAGIC defaults) and `key=value` overrides, such as `lakehouse.root=dbfs:/mnt/lakehouse`.

# COMMAND ----------

from shl.notebook import add_config_widgets, config_from_widgets

add_config_widgets(dbutils)

# COMMAND ----------

config = config_from_widgets(dbutils)

# COMMAND ----------

from shl.labels.job import run_label_stats

report = run_label_stats(config, spark)
print(report)
