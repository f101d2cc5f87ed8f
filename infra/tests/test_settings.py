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
