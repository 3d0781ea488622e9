import pytest

from checks.config import load_config
from checks.errors import ConfigError


def _write(tmp_path, text):
    path = tmp_path / "lsready.yaml"
    path.write_text(text)
    return str(path)


def test_valid_config_with_several_targets(tmp_path):
    cfg = load_config(
        _write(
            tmp_path,
            """
default_target: prod
targets:
  prod:
    redis: {url: "redis://:pw@redis.example:6379/0"}
    clickhouse: {url: "https://u:pw@ch.example:8443/default", cluster: replicated}
  staging:
    postgres: {url: "postgresql://u:pw@pg.example:5432/postgres"}
""",
        ),
        env={},
    )
    assert cfg.target(None)[0] == "prod"
    assert cfg.target("staging")[1].postgres is not None
    assert cfg.targets["prod"].clickhouse.database == "default"


def test_invalid_url_names_the_key(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_config(_write(tmp_path, "targets:\n  prod:\n    redis: {url: 'http://x'}\n"), env={})
    assert exc.value.problems == ["targets.prod.redis.url: Redis URL must start with redis://, rediss://, "
                                  "unix:// (got 'http')"]  # fmt: skip


def test_unknown_and_missing_keys_are_named(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_config(_write(tmp_path, "targets:\n  prod:\n    redis: {uri: 'redis://x'}\n"), env={})
    assert "targets.prod.redis.url: missing" in exc.value.problems
    assert "targets.prod.redis.uri: unknown key" in exc.value.problems


def test_environment_overrides_file_values(tmp_path):
    path = _write(tmp_path, "targets:\n  prod:\n    redis: {url: 'redis://a:6379'}\n")
    env = {
        "LSREADY_TARGETS__PROD__REDIS__URL": "redis://b:6379",
        "LSREADY_TIMEOUTS__PROBE_S": "2.5",
        "LSREADY_TARGETS__EDGE__POSTGRES__URL": "postgresql://u@h/db",
    }
    cfg = load_config(path, env=env)
    assert cfg.targets["prod"].redis.url == "redis://b:6379"
    assert cfg.timeouts.probe_s == 2.5
    assert cfg.targets["edge"].postgres.url == "postgresql://u@h/db"


def test_config_path_from_environment_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(env={"LSREADY_CONFIG": str(tmp_path / "nope.yaml")})


def test_bad_yaml_is_reported_with_line(tmp_path):
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d"):
        load_config(_write(tmp_path, "targets:\n  prod: [\n"), env={})


def test_default_target_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="default_target 'prod' is not one of targets"):
        load_config(_write(tmp_path, "default_target: prod\ntargets: {}\n"), env={})


def test_the_readme_reference_names_every_config_key_with_its_env_var():
    """Each leaf of the config model is a row of README's configuration table, with its env var."""
    import typing

    from pydantic import BaseModel

    from checks import config as cfg
    from conftest import ROOT

    readme = (ROOT / "README.md").read_text()

    def leaves(model, prefix):
        for name, field in model.model_fields.items():
            args = typing.get_args(field.annotation) or (field.annotation,)
            nested = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            if nested:
                yield from leaves(nested[0], f"{prefix}{name}.")
            else:
                yield f"{prefix}{name}"

    keys = [k.replace("targets.", "targets.<name>.", 1) for k in leaves(cfg.Config, "")]
    keys = [k.replace("slack.access.", "slack.access.<action>.") for k in keys]
    keys = [
        {"thresholds": "thresholds.<item-id>.<key>", "severity": "severity.<item-id>"}.get(k, k) for k in keys
    ]
    keys = [k.replace("acks.items", "acks.items.<item-id>") for k in keys]
    keys = list(dict.fromkeys("alerts.routes" if k.startswith("alerts.routes.") else k for k in keys))
    missing = []
    for key in keys:
        env = (
            "LSREADY_"
            + key.replace("<name>", "<NAME>")
            .replace("<item-id>", "<ITEM_ID>")
            .replace("<action>", "<ACTION>")
            .replace("<key>", "<KEY>")
            .replace(".", "__")
            .upper()
        )
        if f"| `{key}` | `{env}` |" not in readme:
            missing.append((key, env))
    assert not missing, missing
