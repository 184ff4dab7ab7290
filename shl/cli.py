"""The ``shl`` console command: one sub-command per pipeline stage.

    shl ingest --config conf/codiesp.yaml lakehouse.root=/data/lakehouse
    shl sample sample.n_admissions=100000 source.path=/data/sample
    shl run

The same entry point serves the thin ``jobs/<stage>.py`` scripts that
``spark-submit`` runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from shl.config import PIPELINE_STAGES, Config, ConfigError, load_config
from shl.ingest.records import MissingColumnError, MissingInputError
from shl.scoring.errors import VocabularyMismatchError

logger = logging.getLogger("shl")

# Stage name: help text. The functions are in shl.pipeline.STAGE_FUNCTIONS; "run" runs
# every pipeline stage in order.
STAGES = {
    "sample": "write the built-in sample (MIMIC-IV layout) to source.path",
    "ingest": "read the configured source into the bronze Delta tables",
    "tokenize": "build the silver documents, label_index and tokens tables",
    "label-stats": "compute label statistics, co-occurrence and segments from the train split",
    "dedup-noise": "find near-duplicate documents and noisy labels with sentence embeddings",
    "train": "train the coding model with the configured launcher",
    "score": "score documents with a trained model into the gold predictions table",
    "evaluate": "compute metrics of the scored split into the gold evaluation table",
    "report": "write the HTML report of the evaluated model",
    "run": f"run the pipeline: {', '.join(PIPELINE_STAGES)} (leave stages out with pipeline.skip=[...])",
}
# Errors caused by input or configuration: reported in one line, without a traceback.
_USER_ERRORS = (ConfigError, MissingInputError, MissingColumnError, VocabularyMismatchError, FileNotFoundError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shl", description="Medical coding with the Segmented Harmonic Loss on Spark")
    stage_help = "; ".join(f"{name}: {text}" for name, text in STAGES.items())
    parser.add_argument("stage", choices=list(STAGES), help=stage_help)
    parser.add_argument("--config", "-c", help="YAML configuration file (default: the values of conf/local.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="settings that replace the file's, e.g. spark.master=local[4]")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one stage and return the process exit code (0 success, 2 bad input or config)."""
    args = build_parser().parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config, args.overrides)
        logging.getLogger().setLevel(config.log_level.upper())
        # py4j logs a traceback at INFO each time Horovod's task side closes its connection.
        logging.getLogger("py4j").setLevel(logging.WARNING)
        started = time.monotonic()
        logger.info("Stage %s started (config %s)", args.stage, args.config or "defaults")
        _run_stage(args.stage, config)
        logger.info("Stage %s finished in %.1f s", args.stage, time.monotonic() - started)
    except _USER_ERRORS as error:
        logger.error("%s", error)
        return 2
    return 0


def _run_stage(stage: str, config: Config) -> None:
    from shl.pipeline import run_pipeline, run_stage

    if stage == "run":
        report = run_pipeline(config)
        if report.report_path:
            print(f"Report: {report.report_path}", flush=True)
        return
    result = run_stage(stage, config)
    if stage == "report":
        print(f"Report: {result.path}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
