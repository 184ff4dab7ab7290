"""Configuration loading, validation and overrides."""

from pathlib import Path

import pytest

from shl.config import Config, ConfigError, load_config

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def test_local_yaml_equals_defaults():
    assert load_config(CONF_DIR / "local.yaml") == Config()


def test_codiesp_yaml_sets_source(monkeypatch):
    monkeypatch.chdir(CONF_DIR.parent)
    shared = CONF_DIR.parent.parent / "shared" / "data" / "codiesp"
    if not shared.is_dir():
        pytest.skip("the CodiEsp copy next to the repository is not here")
    config = load_config(CONF_DIR / "codiesp.yaml")
    assert config.source.format == "codiesp"
    assert config.source_name == "codiesp"
    assert config.lakehouse.root == ".lakehouse/codiesp"


def test_overrides_parse_yaml_values():
    config = load_config(
        None,
        ["spark.shuffle_partitions=3", "ingest.codiesp_splits=[train]", "spark.conf={spark.executor.cores: 2}",
         "sample.noise_rate=0", "source.name=site_a"],
    )
    assert config.spark.shuffle_partitions == 3
    assert config.ingest.codiesp_splits == ["train"]
    assert config.spark.conf == {"spark.executor.cores": "2"}
    assert config.sample.noise_rate == 0.0
    assert config.source_name == "site_a"


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("spark:\n  mastr: local[1]\n")
    with pytest.raises(ConfigError, match=r"unknown key 'spark.mastr'.*valid keys in spark: .*master"):
        load_config(path)


def test_wrong_type_names_key_and_type(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("spark:\n  shuffle_partitions: many\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: key 'spark.shuffle_partitions' must be an integer, found 'many'"):
        load_config(path)


def test_boolean_is_not_an_integer():
    with pytest.raises(ConfigError, match="must be an integer, found True"):
        load_config(None, ["sample.seed=true"])


def test_list_items_are_checked():
    with pytest.raises(ConfigError, match=r"key 'ingest.mimic3_categories\[1\]' must be a string, found 3"):
        load_config(None, ["ingest.mimic3_categories=[Discharge summary, 3]"])


def test_section_must_be_mapping():
    with pytest.raises(ConfigError, match="spark must be a mapping"):
        load_config(None, ["spark=local"])


def test_missing_source_path_is_named(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigError, match=rf"'source.path' points to '{missing}', which does not exist"):
        load_config(None, ["source.format=mimic4", f"source.path={missing}"])


def test_sample_path_need_not_exist(tmp_path):
    config = load_config(None, [f"source.path={tmp_path / 'new'}"])
    assert config.source.format == "sample"


def test_source_url_is_rejected_with_fuse_advice():
    with pytest.raises(ConfigError, match=r"URL 'dbfs:/mnt/mimic3'.*/dbfs/mnt/\.\.\. or /Volumes/"):
        load_config(None, ["source.format=mimic3", "source.path=dbfs:/mnt/mimic3"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("source.format=mimic5", "'source.format' must be one of sample, mimic3, mimic4, codiesp"),
        ("sample.noise_rate=1.5", "'sample.noise_rate' must be between 0 and 1"),
        ("spark.shuffle_partitions=0", "'spark.shuffle_partitions' must be at least 1"),
        ("ingest.codiesp_splits=[validation]", "'ingest.codiesp_splits' must be a list of train, dev, test"),
        ("log_level=LOUD", "'log_level' must be one of DEBUG, INFO, WARNING, ERROR"),
    ],
)
def test_out_of_range_values(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


@pytest.mark.parametrize("override", ["no_equals_sign", "=value"])
def test_malformed_override(override):
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(None, [override])


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="configuration file not found: .*absent.yaml"):
        load_config(tmp_path / "absent.yaml")


def test_top_level_must_be_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping of sections"):
        load_config(path)
