"""Bookkeeping of a grid of loss runs: loss specs, run keys, a resumable results file,
the metrics of one run, and Markdown tables of the mean and standard deviation over seeds.

Pure Python and NumPy; :mod:`shl.bench.codiesp_losses` runs the grid.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import yaml

from shl.evaluation.metrics import codiesp_map
from shl.losses import LOSS_OPTIONS
from shl.training.metrics import evaluate_probabilities, tune_thresholds

# Grid-only option of "shl": put every label in one segment, which turns the F1 term
# into a plain soft F1 over all labels. Thresholds and per-segment metrics keep the
# real segments.
SINGLE_SEGMENT_OPTION = "segments"
SINGLE_SEGMENT_VALUE = "single"

FIXED_THRESHOLD = 0.5
# Decimals of columns that are not F1 or MAP values.
COLUMN_DIGITS = {"seconds": 0, "best_epoch": 1, "epochs_run": 1}


@dataclass(frozen=True)
class LossSpec:
    """A loss name with keyword options, written ``name`` or ``name:key=value,key=value``.

    Values are parsed as YAML scalars, so ``momentum=0.9`` is a float and
    ``active_only=false`` a bool. ``shl`` also takes ``segments=single``.
    """

    name: str
    options: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def parse(cls, text: str) -> LossSpec:
        """Parse ``name[:key=value,...]``, raising ValueError on an unknown name or option."""
        name, _, rest = text.partition(":")
        name = name.strip()
        if name not in LOSS_OPTIONS:
            raise ValueError(
                f"invalid loss {name!r} in {text!r}: expected one of {list(LOSS_OPTIONS)}"
            )
        valid = set(LOSS_OPTIONS[name]) | ({SINGLE_SEGMENT_OPTION} if name == "shl" else set())
        options = {}
        for item in filter(None, (part.strip() for part in rest.split(","))):
            key, equals, value = item.partition("=")
            if not equals or key not in valid:
                raise ValueError(
                    f"invalid option {item!r} in {text!r}: expected key=value with a key "
                    f"in {sorted(valid)}"
                )
            options[key] = yaml.safe_load(value)
        if options.get(SINGLE_SEGMENT_OPTION, SINGLE_SEGMENT_VALUE) != SINGLE_SEGMENT_VALUE:
            raise ValueError(
                f"invalid segments option in {text!r}: the only value is {SINGLE_SEGMENT_VALUE!r}"
            )
        return cls(name, tuple(sorted(options.items())))

    @property
    def text(self) -> str:
        """The canonical spelling: options sorted by key, values as YAML writes them."""
        if not self.options:
            return self.name
        parts = [f"{key}={_yaml_scalar(value)}" for key, value in self.options]
        return f"{self.name}:{','.join(parts)}"

    @property
    def single_segment(self) -> bool:
        return dict(self.options).get(SINGLE_SEGMENT_OPTION) == SINGLE_SEGMENT_VALUE

    @property
    def loss_options(self) -> dict[str, Any]:
        """Keyword options for ``build_loss``, without the grid-only ``segments``."""
        return {key: value for key, value in self.options if key != SINGLE_SEGMENT_OPTION}


def _yaml_scalar(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def run_key(setting: str, loss: LossSpec, seed: int, hyperparameters: Mapping[str, Any]) -> str:
    """Return the key that identifies a run in the results file.

    Any change to the hyperparameters gives a new key, so a resumed grid never reuses
    a run made with other settings.
    """
    settings = json.dumps(dict(hyperparameters), sort_keys=True, separators=(",", ":"))
    return f"{setting}|{loss.text}|seed={seed}|{settings}"


def read_results(path: str) -> dict[str, dict[str, Any]]:
    """Return the records of a JSON-lines results file by run key; {} when it does not exist.

    A last line cut short by an interrupted write is skipped.
    """
    records: dict[str, dict[str, Any]] = {}
    if not os.path.exists(path):
        return records
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            records[record["key"]] = record
    return records


def append_result(path: str, record: Mapping[str, Any]) -> None:
    """Append one record as a JSON line and flush it to disk."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(dict(record), sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def pending(keys: Iterable[str], finished: Mapping[str, Any]) -> list[str]:
    """Return the keys without a finished record, in their order."""
    return [key for key in keys if key not in finished]


def ranked_codes(probabilities: np.ndarray, codes: Sequence[str]) -> list[list[str]]:
    """Return every document's codes by descending probability, ties by label column."""
    order = np.argsort(-np.asarray(probabilities), axis=1, kind="stable")
    return [[codes[column] for column in row] for row in order]


def run_metrics(
    val_probabilities: np.ndarray,
    val_targets: np.ndarray,
    test_probabilities: np.ndarray,
    test_targets: np.ndarray,
    segments: np.ndarray,
    codes: Sequence[str],
    test_gold_codes: Sequence[set[str]],
) -> dict[str, float]:
    """Compute the test metrics of one run.

    Thresholds are tuned on the validation probabilities (one per segment and a
    global one). The keys ``micro_f1``, ``macro_f1``, ``segment_<k>_micro_f1`` and
    ``segment_<k>_macro_f1`` use the tuned thresholds. The same keys with the suffix
    ``_at_0.5`` use the fixed threshold 0.5. ``map`` is the CodiEsp mean average
    precision of the ranked label codes against all gold codes of each test document,
    and ``global_threshold`` the tuned global threshold.
    """
    thresholds = tune_thresholds(val_probabilities, val_targets, segments)
    metrics = dict(evaluate_probabilities(test_probabilities, test_targets, segments, thresholds))
    fixed = evaluate_probabilities(test_probabilities, test_targets, segments, FIXED_THRESHOLD)
    metrics.update({f"{key}_at_0.5": value for key, value in fixed.items()})
    metrics["map"] = codiesp_map(ranked_codes(test_probabilities, codes), test_gold_codes)
    metrics["global_threshold"] = float(thresholds["global"])
    return metrics


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Return the mean and the sample standard deviation (ddof 1; 0 for one value)."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return math.nan, math.nan
    std = float(array.std(ddof=1)) if array.size > 1 else 0.0
    return float(array.mean()), std


@dataclass
class RowSummary:
    """Mean and standard deviation over the seeds of one (setting, loss) row."""

    setting: str
    loss: str
    seeds: list[int]
    stats: dict[str, tuple[float, float]]


def summarise(records: Iterable[Mapping[str, Any]], metrics: Sequence[str]) -> list[RowSummary]:
    """Group records by (setting, loss spec), in first-seen order, and average ``metrics``.

    A metric is read from ``record["metrics"]`` first, then from the record itself
    (for ``seconds``, ``best_epoch`` and the like).
    """
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for record in records:
        groups.setdefault((record["setting"], record["loss"]), []).append(record)
    rows = []
    for (setting, loss), members in groups.items():
        stats = {}
        for metric in metrics:
            values = [member["metrics"].get(metric, member.get(metric)) for member in members]
            stats[metric] = mean_std([value for value in values if value is not None])
        rows.append(RowSummary(setting, loss, sorted(member["seed"] for member in members), stats))
    return rows


def format_mean_std(mean: float, std: float, digits: int = 3) -> str:
    """Format ``mean ± std`` with a fixed number of decimals; "n/a" for NaN."""
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int = 1
) -> str:
    """Return a Markdown table; columns from ``numeric_from`` on are right-aligned."""
    align = ["---" if index < numeric_from else "---:" for index in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def summary_table(
    rows: Sequence[RowSummary], columns: Sequence[tuple[str, str]], digits: int = 3
) -> str:
    """Return a Markdown table with setting, loss, seeds and one ``mean ± std`` cell per column.

    ``columns`` pairs a header with a metric name of the summaries. The metric
    ``seconds`` is printed as whole seconds and epochs with one decimal.
    """
    header = ["setting", "loss", "seeds", *(title for title, _ in columns)]
    body = []
    for row in rows:
        cells = [row.setting, f"`{row.loss}`", str(len(row.seeds))]
        for _, metric in columns:
            mean, std = row.stats[metric]
            cells.append(format_mean_std(mean, std, COLUMN_DIGITS.get(metric, digits)))
        body.append(cells)
    return markdown_table(header, body, numeric_from=2)


def paired_difference(
    records: Iterable[Mapping[str, Any]], setting: str, loss: str, reference: str, metric: str
) -> tuple[float, float, int]:
    """Return the mean of ``loss`` minus ``reference`` on ``metric`` over their shared seeds.

    Returns the mean difference, its standard error and the number of shared seeds.

    Runs with the same seed start from the same head weights and see the same batch
    order, so the per-seed difference removes that part of the seed-to-seed spread.
    The standard error is the sample standard deviation of the differences over
    sqrt(n); it is NaN below two shared seeds.
    """
    values: dict[str, dict[int, float]] = {loss: {}, reference: {}}
    for record in records:
        if record["setting"] == setting and record["loss"] in values:
            values[record["loss"]][record["seed"]] = record["metrics"][metric]
    seeds = sorted(set(values[loss]) & set(values[reference]))
    differences = np.array([values[loss][seed] - values[reference][seed] for seed in seeds])
    if differences.size < 2:
        mean = float(differences.mean()) if differences.size else math.nan
        return mean, math.nan, int(differences.size)
    error = differences.std(ddof=1) / math.sqrt(differences.size)
    return float(differences.mean()), float(error), int(differences.size)


def difference_table(
    records: Sequence[Mapping[str, Any]],
    reference: str,
    columns: Sequence[tuple[str, str]],
    digits: int = 3,
) -> str:
    """Return a Markdown table of :func:`paired_difference` to ``reference`` for the other rows."""
    rows = []
    for summary in summarise(records, []):
        if summary.loss == reference:
            continue
        cells = [summary.setting, f"`{summary.loss}`"]
        for _, metric in columns:
            mean, error, count = paired_difference(
                records, summary.setting, summary.loss, reference, metric
            )
            if math.isnan(mean):
                cells.append("n/a")
            else:
                cells.append(f"{mean:+.{digits}f} ± {error:.{digits}f} ({count})")
        rows.append(cells)
    header = ["setting", "loss", *(title for title, _ in columns)]
    return markdown_table(header, rows, numeric_from=2)
