"""Distributed training of the coding model: data, loop, launchers, metrics, checkpoints, tracking.

The entry point is :func:`shl.training.job.run_train`, the ``train`` stage of the ``shl``
command. Submodules are imported where they are used, so that importing the package
does not load Spark, Horovod or MLflow.
"""
