"""Measure the CPU cost of the Segmented Harmonic Loss against BCE, and of the model forward.

Run ``python -m shl.bench.loss_speed``. The script prints the machine, then markdown
tables:

- forward plus backward time of every loss on random logits of shape (rows, labels)
  with the labels split evenly into segments (default 32 x 10,000 in 200 segments),
  with the ratio to BCE;
- forward time per document of the coding model for both heads (default chunk_len 128,
  max_chunks 4, 50 labels, every chunk full), in eval mode without gradients.

Each number is the median over repeated runs after warm-up runs. The losses are timed
round-robin in the same process. Torch uses one thread by default (``--threads``), so
that the timings do not depend on contention for a second core.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

from shl.losses import build_loss
from shl.model import CodingModelConfig, build_coding_model


def machine_description() -> str:
    """Return CPU count, CPU model and memory of this machine as one line."""
    cpu_model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = "unknown memory"
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    memory = f"{int(line.split()[1]) / 1024**2:.1f} GiB memory"
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu_model}, {memory}"


def median_milliseconds(run: Callable[[], None], warmup: int, repeats: int) -> float:
    """Return the median wall time of ``run`` in milliseconds after ``warmup`` calls."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0


def benchmark_losses(
    rows: int, labels: int, segments: int, warmup: int, repeats: int
) -> list[tuple[str, float]]:
    """Return (loss name, median forward+backward milliseconds) for every loss.

    The losses are timed round-robin, one run of each per round, so that load from
    other processes on a shared machine affects all of them alike.
    """
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(rows, labels, generator=generator).requires_grad_()
    targets = (torch.rand(rows, labels, generator=generator) < 0.01).float()
    segment_ids = torch.arange(labels) * segments // labels  # (labels,), contiguous blocks
    label_counts = torch.randint(0, 1000, (labels,), generator=generator)
    names = ("bce", "shl", "focal", "asl", "cb")
    loss_fns = {
        name: build_loss(name, segments=segment_ids, label_counts=label_counts) for name in names
    }

    def step(name: str) -> float:
        start = time.perf_counter()
        logits.grad = None
        loss_fns[name](logits, targets).backward()
        return time.perf_counter() - start

    for _ in range(warmup):
        for name in names:
            step(name)
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(repeats):
        for name in names:
            times[name].append(step(name))
    return [(name, statistics.median(times[name]) * 1000.0) for name in names]


def benchmark_model(
    head: str, num_labels: int, chunk_len: int, max_chunks: int, documents: int, repeats: int
) -> float:
    """Return the median forward milliseconds per document of a freshly built model."""
    torch.manual_seed(0)
    config = CodingModelConfig(
        num_labels=num_labels, head=head, chunk_len=chunk_len, max_chunks=max_chunks
    )
    model = build_coding_model(config).eval()
    vocab_size = int(model.encoder.config.vocab_size)
    input_ids = torch.randint(1000, vocab_size, (documents, max_chunks, chunk_len))
    attention_mask = torch.ones_like(input_ids)

    def forward() -> None:
        with torch.no_grad():
            model(input_ids, attention_mask)

    return median_milliseconds(forward, warmup=1, repeats=repeats) / documents


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--rows", type=int, default=32, help="batch rows for the loss timing")
    parser.add_argument("--labels", type=int, default=10_000, help="labels for the loss timing")
    parser.add_argument("--segments", type=int, default=200, help="segments for the loss timing")
    parser.add_argument("--warmup", type=int, default=10, help="untimed warm-up rounds before the loss timing")
    parser.add_argument("--repeats", type=int, default=100, help="timed loss runs")
    parser.add_argument("--model-labels", type=int, default=50, help="output labels of the timed model")
    parser.add_argument("--chunk-len", type=int, default=128, help="tokens per chunk")
    parser.add_argument("--max-chunks", type=int, default=4, help="chunks per document")
    parser.add_argument("--documents", type=int, default=4, help="documents per model forward")
    parser.add_argument("--model-repeats", type=int, default=5, help="timed model forwards")
    parser.add_argument("--skip-model", action="store_true", help="time only the losses")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    torch.set_num_threads(arguments.threads)
    print(f"Machine: {machine_description()}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)\n")

    losses = benchmark_losses(
        arguments.rows, arguments.labels, arguments.segments, arguments.warmup, arguments.repeats
    )
    bce_ms = dict(losses)["bce"]
    print(
        f"Loss forward + backward, {arguments.rows} rows x {arguments.labels} labels, "
        f"{arguments.segments} segments, median of {arguments.repeats} runs:\n"
    )
    print("| loss | ms | ratio to BCE |")
    print("|---|---:|---:|")
    for name, milliseconds in losses:
        print(f"| {name} | {milliseconds:.2f} | {milliseconds / bce_ms:.2f} |")

    if arguments.skip_model:
        return
    print(
        f"\nModel forward, {arguments.model_labels} labels, chunk_len {arguments.chunk_len}, "
        f"max_chunks {arguments.max_chunks}, batches of {arguments.documents} documents, "
        f"median of {arguments.model_repeats} runs:\n"
    )
    print("| head | ms per document |")
    print("|---|---:|")
    for head in ("linear", "label_attention"):
        per_document = benchmark_model(
            head,
            arguments.model_labels,
            arguments.chunk_len,
            arguments.max_chunks,
            arguments.documents,
            arguments.model_repeats,
        )
        print(f"| {head} | {per_document:.1f} |")


if __name__ == "__main__":
    main()
