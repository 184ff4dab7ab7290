"""The training function every process runs, whichever launcher started it.

Per epoch, every process runs the same number of batches from its own shard; the
gradients are averaged by the distributed context. Rank 0 then scores the whole
validation split, tunes the thresholds, decides on early stopping, saves the model
when the validation micro-F1 improved and writes a checkpoint. It broadcasts the
updated state, so all processes leave the loop at the same epoch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from torch import nn

from shl.losses import build_loss
from shl.model import CodingModel, CodingModelConfig, build_coding_model, save_model
from shl.training import checkpoint as checkpoints
from shl.training.checkpoint import TrainState
from shl.training.metrics import evaluate_probabilities, tune_thresholds
from shl.training.optim import WarmupDecay, build_optimizer, build_scheduler
from shl.training.plan import TrainingPlan

logger = logging.getLogger(__name__)

MODEL_FOLDER = "model"
RANKS_FOLDER = "ranks"
# The validation metric that early stopping and model selection follow.
SELECTION_METRIC = "val_micro_f1_tuned"


def resolve_device(setting: str, local_rank: int) -> torch.device:
    """Return the device of this process: ``cuda:<local_rank>`` or the CPU.

    Raises
    ------
    RuntimeError
        If ``setting`` is ``cuda`` and torch finds no GPU.
    """
    if setting == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if setting == "cuda":
        raise RuntimeError(
            "training.device is cuda but torch finds no GPU on this worker; set training.device=auto or cpu"
        )
    return torch.device("cpu")


def autocast_settings(device: torch.device, enabled: bool) -> tuple[torch.dtype | None, Any]:
    """Return the autocast dtype and gradient scaler: bfloat16 where supported, else float16 with a scaler.

    Mixed precision is used on CUDA only; on the CPU both are None.
    NOTE: the CUDA branches (autocast, GradScaler, NCCL) have not been run on a GPU yet.
    """
    if device.type != "cuda" or not enabled:
        return None, None
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, None
    return torch.float16, torch.amp.GradScaler("cuda")


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def parameter_checksum(model: nn.Module) -> str:
    """Return the SHA-256 of every tensor of the state dict, in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode("utf-8"))
        digest.update(tensor.detach().to("cpu").contiguous().numpy().tobytes())
    return digest.hexdigest()


def _to_device(batch: dict, device: torch.device, chunks: int, chunk_len: int) -> tuple[torch.Tensor, ...]:
    shape = (-1, chunks, chunk_len)
    input_ids = batch["input_ids"].to(device=device, dtype=torch.long).reshape(shape)
    attention_mask = batch["attention_mask"].to(device=device, dtype=torch.long).reshape(shape)
    targets = batch["targets"].to(device=device, dtype=torch.float32)
    weights = batch["weights"].to(device=device, dtype=torch.float32)
    return input_ids, attention_mask, targets, weights


@torch.no_grad()
def predict_validation(
    model: CodingModel, plan: TrainingPlan, device: torch.device, dtype: torch.dtype | None
) -> tuple[np.ndarray, np.ndarray]:
    """Return the sigmoid probabilities and targets of all validation rows, shape (rows, labels)."""
    model.eval()
    chunks, chunk_len = plan.model["max_chunks"], plan.model["chunk_len"]
    probabilities, targets = [], []
    with plan.data.open_val(plan.batch_size) as batches:
        for batch in batches:
            input_ids, attention_mask, batch_targets, _ = _to_device(batch, device, chunks, chunk_len)
            with _autocast(device, dtype):
                logits = model(input_ids, attention_mask)
            probabilities.append(torch.sigmoid(logits.float()).cpu().numpy())
            targets.append(batch_targets.cpu().numpy())
    model.train()
    if not probabilities:
        width = len(plan.labels)
        return np.zeros((0, width), np.float32), np.zeros((0, width), np.float32)
    return np.concatenate(probabilities), np.concatenate(targets)


def validation_metrics(
    probabilities: np.ndarray, targets: np.ndarray, segments: list[int]
) -> tuple[dict[str, float], dict[str, Any]]:
    """Return the validation metrics (prefixed ``val_``) and the tuned thresholds.

    Metrics without a suffix use the threshold 0.5; those ending in ``_tuned`` use the
    per-segment thresholds tuned on the same rows.
    """
    thresholds = tune_thresholds(probabilities, targets, segments)
    metrics = {f"val_{key}": value for key, value in evaluate_probabilities(probabilities, targets, segments).items()}
    tuned = evaluate_probabilities(probabilities, targets, segments, thresholds)
    metrics["val_micro_f1_tuned"] = tuned["micro_f1"]
    metrics["val_macro_f1_tuned"] = tuned["macro_f1"]
    metrics["val_global_threshold"] = thresholds["global"]
    return metrics, thresholds


class _Trainer:
    """State of one process during :func:`train`; see the module docstring for the flow."""

    def __init__(self, plan: TrainingPlan, context) -> None:
        self.plan = plan
        self.context = context
        self.rank = context.rank
        self.device = resolve_device(plan.device, context.local_rank)
        self.amp_dtype, self.scaler = autocast_settings(self.device, plan.mixed_precision)
        torch.manual_seed(plan.seed)
        np.random.seed(plan.seed)

        self.model = build_coding_model(CodingModelConfig.from_dict(plan.model)).to(self.device)
        # The heads read last_hidden_state only, so a BERT pooler gets no gradient; DDP
        # rejects parameters without gradients unless they are frozen.
        pooler = getattr(self.model.encoder, "pooler", None)
        if isinstance(pooler, nn.Module):
            pooler.requires_grad_(False)
        self.loss_fn = build_loss(
            plan.loss,
            plan.loss_options,
            segments=torch.tensor(plan.segments, dtype=torch.long),
            label_counts=torch.tensor(plan.label_counts, dtype=torch.float32),
        ).to(self.device)
        self.state = TrainState()
        self.resumed_from: int | None = None
        self.seen_rows: set[int] = set()
        self.samples = 0
        self.train_seconds = 0.0

    # -- set-up -----------------------------------------------------------------------

    def set_up(self) -> None:
        """Build the optimizer and schedule, resume from a checkpoint and sync every process."""
        checkpoint = self._read_checkpoint() if self.rank == 0 else None
        if checkpoint is not None:
            checkpoints.load_weights(self.model, checkpoint.weights)

        optimizer = build_optimizer(self.model, self.plan.learning_rate, self.plan.weight_decay)
        self.forward_model, self.optimizer = self.context.prepare(self.model, optimizer, self.plan.grad_accumulation)
        self.scheduler = build_scheduler(self.optimizer, self.plan.warmup_steps, self.plan.total_steps)

        shared = None
        if checkpoint is not None:
            self.optimizer.load_state_dict(checkpoint.training_state["optimizer"])
            shared = {
                "state": asdict(checkpoint.state),
                "scheduler": checkpoint.training_state["scheduler"],
                "scaler": checkpoint.training_state.get("scaler"),
                "loss": {name: value.cpu() for name, value in checkpoint.training_state["loss"].items()},
            }
        shared = self.context.broadcast_object(shared)
        resumed = shared is not None
        if resumed:
            self.state = TrainState(**shared["state"])
            self.resumed_from = self.state.epochs_completed
            self.scheduler.load_state_dict(shared["scheduler"])
            if self.scaler is not None and shared["scaler"]:
                self.scaler.load_state_dict(shared["scaler"])
            self.loss_fn.load_state_dict({name: value.to(self.device) for name, value in shared["loss"].items()})
        self.context.sync_state(self.model, self.optimizer, resumed)
        if resumed:
            self._follow_plan_schedule()

    def _follow_plan_schedule(self) -> None:
        """Continue at the checkpoint's step on this run's schedule, which may be longer or shorter."""
        schedule = WarmupDecay(self.plan.warmup_steps, self.plan.total_steps)
        self.scheduler.lr_lambdas = [schedule for _ in self.optimizer.param_groups]
        self.scheduler.base_lrs = [self.plan.learning_rate for _ in self.optimizer.param_groups]
        for group in self.optimizer.param_groups:
            group["lr"] = self.plan.learning_rate * schedule(self.scheduler.last_epoch)
        self.scheduler._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _read_checkpoint(self) -> checkpoints.Checkpoint | None:
        folder = checkpoints.latest_checkpoint_folder(self.plan.output_dir)
        if folder is None:
            return None
        checkpoint = checkpoints.load_checkpoint(folder, map_location=self.device)
        checkpoints.check_compatible(checkpoint, self.plan.checkpoint_metadata(), self.plan.output_dir)
        logger.info(
            "Resuming from %s: %d epochs completed, step %d",
            folder, checkpoint.state.epochs_completed, checkpoint.state.step,
        )
        return checkpoint

    # -- epochs -----------------------------------------------------------------------

    def finished(self) -> bool:
        plan, state = self.plan, self.state
        return (
            state.stopped_early
            or state.epochs_completed >= plan.epochs
            or (plan.max_steps > 0 and state.step >= plan.max_steps)
        )

    def run(self) -> None:
        epochs_this_start = 0
        if self.finished():
            logger.info("Rank %d: the run in %s is already complete", self.rank, self.plan.output_dir)
            return
        with self.plan.data.open_train(self.rank, self.context.size, self.plan.batch_size) as batches:
            while not self.finished():
                train_loss, rate = self._train_epoch(batches)
                self._end_epoch(train_loss, rate)
                epochs_this_start += 1
                if self.plan.stop_after_epochs and epochs_this_start >= self.plan.stop_after_epochs and not self.finished():
                    logger.info(
                        "Rank %d: stopping after %d epochs of this start (training.stop_after_epochs); "
                        "start again with the same output_dir to resume", self.rank, epochs_this_start,
                    )
                    break

    def _train_epoch(self, batches) -> tuple[float, float]:
        plan, state = self.plan, self.state
        epoch = state.epochs_completed + 1
        chunks, chunk_len = plan.model["max_chunks"], plan.model["chunk_len"]
        self.model.train()
        loss_sum, loss_count, samples = 0.0, 0, 0
        window_samples, window_started = 0, time.monotonic()
        started = time.monotonic()
        for micro in range(plan.micro_batches_per_epoch):
            batch = next(batches)
            self.seen_rows.update(int(row) for row in batch["row_id"].tolist())
            input_ids, attention_mask, targets, weights = _to_device(batch, self.device, chunks, chunk_len)
            boundary = (micro + 1) % plan.grad_accumulation == 0
            sync = contextlib.nullcontext() if boundary else self.context.no_sync(self.forward_model)
            with sync:
                with _autocast(self.device, self.amp_dtype):
                    logits = self.forward_model(input_ids, attention_mask)
                loss = self.loss_fn(logits.float(), targets, weights)
                scaled = loss / plan.grad_accumulation
                (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
            loss_sum += float(loss.detach())
            loss_count += 1
            samples += input_ids.shape[0]
            window_samples += input_ids.shape[0]
            if not boundary:
                continue

            self.context.optimizer_step(self.optimizer, self.scaler, self.model.parameters(), plan.max_grad_norm)
            self.scheduler.step()
            self.optimizer.zero_grad()
            state.step += 1
            if state.step % plan.log_every_steps == 0:
                elapsed = max(time.monotonic() - window_started, 1e-9)
                logger.info(
                    "rank %d epoch %d step %d/%d loss %.4f lr %.3g %.1f samples/s",
                    self.rank, epoch, state.step, plan.total_steps, loss_sum / loss_count,
                    self.scheduler.get_last_lr()[0], window_samples / elapsed,
                )
                window_samples, window_started = 0, time.monotonic()
            if plan.max_steps and state.step >= plan.max_steps:
                break
        seconds = time.monotonic() - started
        self.samples += samples
        self.train_seconds += seconds
        train_loss = self.context.allreduce_mean(loss_sum / max(loss_count, 1))
        rate = self.context.allreduce_mean(samples / max(seconds, 1e-9)) * self.context.size
        return train_loss, rate

    def _end_epoch(self, train_loss: float, samples_per_second: float) -> None:
        shared = None
        if self.rank == 0:
            shared = asdict(self._validate_and_save(train_loss, samples_per_second))
        shared = self.context.broadcast_object(shared)
        self.state = TrainState(**shared)

    def _validate_and_save(self, train_loss: float, samples_per_second: float) -> TrainState:
        plan, state = self.plan, self.state
        state.epochs_completed += 1
        metrics, thresholds = self._validate(train_loss, samples_per_second)

        score = metrics[SELECTION_METRIC]
        if score > state.best_metric:
            state.best_metric, state.best_epoch = score, state.epochs_completed
            state.epochs_without_improvement = 0
            save_model(
                self.model, os.path.join(plan.output_dir, MODEL_FOLDER), plan.labels, plan.segments, thresholds,
                training={
                    "loss": plan.loss, "loss_options": plan.loss_options, "seed": plan.seed,
                    "epoch": state.epochs_completed, SELECTION_METRIC: score,
                },
            )
        else:
            state.epochs_without_improvement += 1
        if plan.early_stopping_patience and state.epochs_without_improvement >= plan.early_stopping_patience:
            state.stopped_early = True
        logger.info(
            "epoch %d step %d: train loss %.4f, val micro-F1 %.4f (tuned %.4f), macro-F1 %.4f, "
            "%.1f samples/s; best %.4f at epoch %d%s",
            state.epochs_completed, state.step, train_loss, metrics["val_micro_f1"], score,
            metrics["val_macro_f1"], samples_per_second, state.best_metric, state.best_epoch,
            ", stopping early" if state.stopped_early else "",
        )

        training_state = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else {},
            "loss": self.loss_fn.state_dict(),
        }
        checkpoints.save_checkpoint(
            plan.output_dir, self.model, training_state, state, plan.checkpoint_metadata(), keep=plan.keep_checkpoints
        )
        return state

    def _validate(self, train_loss: float, samples_per_second: float) -> tuple[dict[str, float], dict[str, Any]]:
        """Score the validation split, append the epoch to the history and return its metrics and thresholds."""
        started = time.monotonic()
        probabilities, targets = predict_validation(self.model, self.plan, self.device, self.amp_dtype)
        metrics, thresholds = validation_metrics(probabilities, targets, self.plan.segments)
        self.state.history.append({
            "epoch": self.state.epochs_completed,
            "step": self.state.step,
            "train_loss": train_loss,
            "train_samples_per_second": samples_per_second,
            "learning_rate": float(self.scheduler.get_last_lr()[0]),
            "val_rows": int(probabilities.shape[0]),
            "val_seconds": time.monotonic() - started,
            **metrics,
        })
        return metrics, thresholds

    # -- results ----------------------------------------------------------------------

    def record(self) -> dict[str, Any]:
        """Write and return this process's record: rows read, samples, speed and parameter checksum."""
        record = {
            "rank": self.rank,
            "size": self.context.size,
            "context": self.context.name,
            "device": str(self.device),
            "row_ids": sorted(self.seen_rows),
            "samples": self.samples,
            "train_seconds": self.train_seconds,
            "final_step": self.state.step,
            "epochs_completed": self.state.epochs_completed,
            "resumed_from_epoch": self.resumed_from,
            "parameters_sha256": parameter_checksum(self.model),
        }
        folder = os.path.join(self.plan.output_dir, RANKS_FOLDER)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"rank-{self.rank}.json")
        with open(path + ".tmp", "w", encoding="utf-8") as handle:
            json.dump(record, handle)
        os.replace(path + ".tmp", path)
        if self.rank == 0:
            record["state"] = asdict(self.state)
        return record


def train(plan: TrainingPlan, context) -> dict[str, Any]:
    """Run the training loop in this process and return its record.

    Parameters
    ----------
    plan : TrainingPlan
    context : SingleProcess, HorovodContext or TorchDDPContext
        The distributed context of this process.

    Returns
    -------
    dict
        This process's record (see ``_Trainer.record``); rank 0's also has ``state``,
        the final :class:`TrainState` as a dict.
    """
    os.makedirs(plan.output_dir, exist_ok=True)
    trainer = _Trainer(plan, context)
    trainer.set_up()
    logger.info(
        "rank %d of %d (%s) on %s: %d batches of %d per epoch, %d steps in total, learning rate %.3g",
        context.rank, context.size, context.name, trainer.device, plan.micro_batches_per_epoch,
        plan.batch_size, plan.total_steps, plan.learning_rate,
    )
    trainer.run()
    return trainer.record()
