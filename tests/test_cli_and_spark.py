"""The console command's error handling and the Spark session factory."""

from __future__ import annotations

import logging

from shl.cli import main
from shl.config import SparkSettings
from shl.spark import get_spark


def test_get_spark_reuses_active_session(spark):
    again = get_spark(SparkSettings(master="local[1]", shuffle_partitions=3, arrow_batch_size=500))
    assert again is spark
    assert again.conf.get("spark.sql.shuffle.partitions") == "3"
    assert again.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch") == "500"
    spark.conf.set("spark.sql.shuffle.partitions", "2")


def test_local_session_has_delta(spark):
    assert spark.conf.get("spark.sql.extensions") == "io.delta.sql.DeltaSparkSessionExtension"
    assert spark.conf.get("spark.sql.catalog.spark_catalog").endswith("DeltaCatalog")


def test_missing_input_file_is_named(spark, tmp_path, caplog):
    source = tmp_path / "mimic4"
    (source / "note").mkdir(parents=True)
    (source / "note" / "discharge.csv").write_text("note_id,subject_id,hadm_id,note_type,note_seq,charttime,storetime,text\n")
    with caplog.at_level(logging.ERROR, logger="shl"):
        code = main(["ingest", "source.format=mimic4", f"source.path={source}", f"lakehouse.root={tmp_path / 'lh'}"])
    assert code == 2
    assert f"input file not found: {source}/hosp/diagnoses_icd.csv.gz or {source}/hosp/diagnoses_icd.csv" in caplog.text
    assert "MIMIC-IV layout" in caplog.text


def test_missing_column_is_named(spark, tmp_path, caplog):
    source = tmp_path / "mimic4"
    (source / "note").mkdir(parents=True)
    (source / "note" / "discharge.csv").write_text("note_id,subject_id,hadm_id,text\n")
    with caplog.at_level(logging.ERROR, logger="shl"):
        code = main(["ingest", "source.format=mimic4", f"source.path={source}", f"lakehouse.root={tmp_path / 'lh'}"])
    assert code == 2
    assert "discharge.csv: missing column(s) note_type, note_seq, charttime, storetime" in caplog.text
    assert "MIMIC-IV note/discharge layout" in caplog.text


def test_bad_override_exits_with_usage_error(caplog):
    with caplog.at_level(logging.ERROR, logger="shl"):
        code = main(["ingest", "spark.shuffle_partitions=many"])
    assert code == 2
    assert "key 'spark.shuffle_partitions' must be an integer, found 'many'" in caplog.text


def test_job_scripts_cover_every_stage_and_start():
    import re
    import subprocess
    import sys
    from pathlib import Path

    from shl.cli import STAGES

    jobs = Path(__file__).resolve().parents[1] / "jobs"
    stages = {}
    for script in sorted(jobs.glob("*.py")):
        # The script's folder comes first on the import path, so a stdlib name would shadow that module.
        assert script.stem not in sys.stdlib_module_names, script.name
        stages[re.search(r'main\(\["([a-z-]+)"', script.read_text()).group(1)] = script
    assert sorted(stages) == sorted(STAGES)
    for stage, script in stages.items():
        result = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, (script.name, result.stderr[-2000:])
        assert "usage: shl" in result.stdout


def test_spark_submit_runs_a_job_from_the_wheel(tmp_path):
    """The README's cluster command: spark-submit --py-files <wheel> jobs/<stage>.py."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from shl.spark import _DELTA_SETTINGS, DELTA_VERSION

    repo = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"), str(repo)],
                   check=True, timeout=300)
    wheel = next((tmp_path / "dist").glob("shl_coding-*.whl"))
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    for name in ("PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET"):
        env.pop(name, None)
    delta_options = ["--packages", f"io.delta:delta-spark_2.12:{DELTA_VERSION}"]
    for key, value in _DELTA_SETTINGS.items():
        delta_options += ["--conf", f"{key}={value}"]
    submit = [str(bin_dir / "spark-submit"), "--master", "local[1]"]
    job = [
        "--py-files", str(wheel), str(repo / "jobs" / "ingest.py"),
        f"source.path={tmp_path / 'sample'}", f"lakehouse.root={tmp_path / 'lakehouse'}",
        "sample.n_admissions=20", "sample.n_patients=10", "spark.shuffle_partitions=1",
    ]
    result = subprocess.run(submit + delta_options + job, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    # spark-submit passes the Python driver's stderr on to its own stdout.
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "Using the spark-submit session" in output
    assert "notes: 20 rows read, 20 inserted" in output

    result = subprocess.run(submit + job, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert "this Spark session has no Delta Lake" in output
    assert f"--packages io.delta:delta-spark_2.12:{DELTA_VERSION}" in output


def test_pipeline_failure_names_the_resume_setting(spark, make_config, caplog):
    from shl.pipeline import run_pipeline

    config = make_config(["pipeline.skip=[ingest,tokenize,label-stats,dedup-noise,train]",
                          "scoring.model=/nonexistent/model"])
    with caplog.at_level(logging.ERROR):
        try:
            run_pipeline(config, spark)
        except FileNotFoundError as error:
            assert "/nonexistent/model" in str(error)
        else:
            raise AssertionError("the score stage should fail without a model")
    assert "Pipeline stopped at stage score after no stage" in caplog.text
    assert "pipeline.skip=[ingest,tokenize,label-stats,dedup-noise,train]" in caplog.text


def test_run_command_lists_every_stage():
    from shl.cli import STAGES
    from shl.config import PIPELINE_STAGES
    from shl.pipeline import STAGE_FUNCTIONS

    assert PIPELINE_STAGES == ("ingest", "tokenize", "label-stats", "dedup-noise", "train", "score", "evaluate", "report")
    assert set(STAGE_FUNCTIONS) == set(STAGES) - {"run"}
    assert main(["run", "pipeline.skip=[nope]"]) == 2
