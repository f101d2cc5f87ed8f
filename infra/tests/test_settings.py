"""Settings: clear errors for what is missing or wrong, before anything is created."""

import pytest


def test_a_missing_zip_directory_is_a_clear_error(run_stack):
    with pytest.raises(Exception, match="WIKIBOT_LAMBDA_ZIPS is not set") as raised:
        run_stack(zips_dir=None)
    assert "nix build .#lambdas" in str(raised.value)


def test_a_zip_directory_without_the_zips_names_what_is_missing(run_stack, tmp_path):
    with pytest.raises(Exception, match="efs-probe-arm64.zip does not exist"):
        run_stack(zips_dir=str(tmp_path))


def test_each_missing_zip_is_named(run_stack, tmp_path):
    (tmp_path / "efs-probe-arm64.zip").write_bytes(b"PK")
    with pytest.raises(Exception, match="git-probe-arm64.zip does not exist"):
        run_stack(zips_dir=str(tmp_path))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"wikibot:architecture": "sparc"}, "architecture must be"),
        ({"wikibot:memory_mb": "64"}, "memory_mb"),
        ({"wikibot:timeout_seconds": "901"}, "timeout_seconds"),
        ({"wikibot:private_subnet_cidr": "192.168.0.0/24"}, "inside vpc_cidr"),
        ({"wikibot:public_subnet_cidr": "10.20.1.0/24"}, "must not overlap"),
        ({"wikibot:vpc_cidr": "not-a-cidr"}, "not a network"),
    ],
)
def test_bad_settings_are_refused(run_stack, config, message):
    with pytest.raises(Exception, match=message):
        run_stack(config)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        # An explicit 0 is the value set, not "use the default": each of these was once
        # silently replaced by its default.
        ({"wikibot:memory_mb": "0"}, "memory_mb must be 128–10240, not 0"),
        ({"wikibot:timeout_seconds": "0"}, "timeout_seconds must be 1–28, not 0"),
        ({"wikibot:budget_amount_usd": "0"}, "budget_amount_usd must be at least 1, not 0"),
        ({"wikibot:api_throttle_rate": "0"}, "api_throttle_rate must be more than 0"),
        ({"wikibot:api_throttle_burst": "0"}, "api_throttle_burst must be 1–5000 requests, not 0"),
        ({"wikibot:timeout_seconds": "29"}, "the API gives up after 29 s"),
        ({"wikibot:log_retention_days": "10"}, "log_retention_days must be one of 0, 1, 3"),
        ({"wikibot:memory_mb": "lots"}, "wikibot:memory_mb"),
    ],
)
def test_invalid_values_are_refused_naming_the_setting(run_stack, config, message):
    with pytest.raises(Exception, match=message):
        run_stack(config)


def test_zero_log_retention_is_kept_and_means_forever(run_stack):
    stack = run_stack({"wikibot:log_retention_days": "0"})
    assert {g.inputs.get("retentionInDays") for g in stack.of_type("aws:cloudwatch/logGroup:LogGroup")} == {0}


def test_false_booleans_are_kept(run_stack):
    stack = run_stack({"wikibot:efs_one_zone": "false", "wikibot:protect_file_system": "false"})
    assert "availabilityZoneName" not in stack.one("aws:efs/fileSystem:FileSystem").inputs
    assert stack.program["settings"].protect_file_system is False


def test_the_dev_stack_file_holds_only_valid_settings(run_stack):
    import yaml

    from conftest import INFRA

    config = yaml.safe_load((INFRA / "Pulumi.dev.yaml").read_text())["config"]
    stack = run_stack({key: str(value) for key, value in config.items()})
    assert stack.program["settings"].timeout_seconds == int(config["wikibot:timeout_seconds"])
