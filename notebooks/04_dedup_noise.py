# Databricks notebook source
# MAGIC %md
# MAGIC # Near-duplicates and label noise
# MAGIC
# MAGIC Embeds every document with MiniLM, finds near-duplicate clusters and noisy (document, code)
# MAGIC pairs, and writes the gold tables `embeddings`, `duplicate_pairs`, `duplicates`, `label_noise`
# MAGIC and the cleaned `training_view`.
# MAGIC
# MAGIC Set the widgets: a YAML config file of the repository's `conf/` folder (empty for the
# MAGIC defaults) and `key=value` overrides, such as `lakehouse.root=dbfs:/mnt/lakehouse`.

# COMMAND ----------

from shl.notebook import add_config_widgets, config_from_widgets

add_config_widgets(dbutils)

# COMMAND ----------

config = config_from_widgets(dbutils)

# COMMAND ----------

from shl.noise.job import run_dedup_noise

report = run_dedup_noise(config, spark)
print(report)
