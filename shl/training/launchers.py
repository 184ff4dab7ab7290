"""Start the training function in ``num_proc`` processes with the configured launcher.

- ``horovod``: ``horovod.spark.run`` runs one process per Spark task on the executors
  (with ``local[n]`` these are local processes), with Gloo on the CPU.
- ``horovodrun``: Horovod's own launcher (``horovod.runner.run``) starts the processes
  on this machine, for a single multi-GPU host without Spark executors.
- ``torch_distributor``: ``pyspark.ml.torch.distributor.TorchDistributor`` runs torch
  DDP on Spark barrier tasks (or on the driver with ``distributor_local_mode``), with
  Gloo on the CPU and NCCL on GPUs.

All three run :func:`shl.training.loop.train` with the same plan.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

from shl.training.plan import TrainingPlan

logger = logging.getLogger(__name__)

LAUNCHERS = ("horovod", "horovodrun", "torch_distributor")
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def worker_environment() -> dict[str, str]:
    """Return the environment of the training processes: the driver's, plus safe tokenizer settings."""
    environment = dict(os.environ)
    # Fast tokenizers can deadlock in processes forked after they started threads.
    environment["TOKENIZERS_PARALLELISM"] = "false"
    return environment


def _configure_process(plan: TrainingPlan, local_size: int) -> None:
    import torch

    from shl.training.data import quiet_petastorm_warnings

    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    level = str(plan.config.get("log_level", "INFO")).upper()
    logging.basicConfig(level=level, format=_LOG_FORMAT)
    logging.getLogger().setLevel(level)
    quiet_petastorm_warnings()
    # Petastorm logs every reader start at INFO.
    logging.getLogger("petastorm").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.distributed.*")
    # Processes on one host share its cores. PySpark sets OMP_NUM_THREADS to
    # spark.task.cpus in its workers, and torch reads it at start, so it is kept.
    if not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, local_size)))


def horovod_worker(plan: TrainingPlan) -> dict[str, Any]:
    """Entry point of a Horovod process (``horovod.spark.run`` or ``horovodrun``)."""
    from shl.training.distributed import HorovodContext
    from shl.training.loop import train

    context = HorovodContext()
    _configure_process(plan, context.local_size)
    try:
        return train(plan, context)
    finally:
        context.shutdown()


def ddp_worker(plan: TrainingPlan) -> dict[str, Any] | None:
    """Entry point of a torch DDP process started by TorchDistributor; rank 0 returns its record."""
    import torch

    from shl.training.distributed import TorchDDPContext
    from shl.training.loop import train

    use_cuda = plan.device != "cpu" and torch.cuda.is_available()
    context = TorchDDPContext(use_cuda=use_cuda)
    _configure_process(plan, context.local_size)
    try:
        record = train(plan, context)
    finally:
        context.shutdown()
    return record if context.rank == 0 else None


def _distributor_uses_gpu(spark, device: str, local_mode: bool) -> bool:
    if device == "cpu":
        return False
    if device == "cuda":
        return True
    key = "spark.driver.resource.gpu.amount" if local_mode else "spark.task.resource.gpu.amount"
    return bool(spark.conf.get(key, None))


def launch(plan: TrainingPlan, spark, local_mode: bool = False) -> list[dict[str, Any] | None]:
    """Run the training function in ``plan.num_proc`` processes and return their records.

    Returns
    -------
    list
        One record per rank for the Horovod launchers; for TorchDistributor, which
        returns rank 0's value only, a list with rank 0's record.

    Raises
    ------
    ImportError
        If the launcher's package is missing, with the alternative to use.
    ValueError
        If ``plan.launcher`` is unknown.
    """
    if plan.launcher not in LAUNCHERS:
        raise ValueError(f"invalid training.launcher {plan.launcher!r}: expected one of {', '.join(LAUNCHERS)}")
    logger.info("Launching %d training processes with %s", plan.num_proc, plan.launcher)

    if plan.launcher == "torch_distributor":
        # NOTE: tested with local_mode=False on the CPU only; local_mode=True and use_gpu
        # follow the TorchDistributor documentation but have not been run.
        from pyspark.ml.torch.distributor import TorchDistributor

        use_gpu = _distributor_uses_gpu(spark, plan.device, local_mode)
        distributor = TorchDistributor(num_processes=plan.num_proc, local_mode=local_mode, use_gpu=use_gpu)
        return [distributor.run(ddp_worker, plan)]

    try:
        import horovod.torch  # noqa: F401  (checks that the PyTorch extension is built)
    except ImportError as error:
        raise ImportError(
            f"training.launcher={plan.launcher} needs Horovod built with PyTorch and Gloo ({error}); build it "
            "as the README describes, or set training.launcher=torch_distributor"
        ) from error

    if plan.launcher == "horovod":
        import horovod.spark

        return horovod.spark.run(
            horovod_worker, args=(plan,), num_proc=plan.num_proc, env=worker_environment(), use_gloo=True
        )

    from horovod.runner import run as horovod_run

    return horovod_run(
        horovod_worker, args=(plan,), np=plan.num_proc, hosts=f"localhost:{plan.num_proc}", use_gloo=True
    )
