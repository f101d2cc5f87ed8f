"""infra/deploy (what `nix run .#deploy` runs), against stand-ins for the Pulumi and AWS CLIs
(tests/fakes/) that record their arguments: no cloud is reachable from here."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

INFRA = Path(__file__).resolve().parents[1]
FAKES = Path(__file__).resolve().parent / "fakes"
ARN = "arn:aws:iam::123456789012:user/deployer"
OUTPUTS = {
    "mcp_url": "https://abc123.execute-api.us-east-1.amazonaws.com/mcp",
    "availability_zone_id": "use1-az4",
    "nat_ami": "ami-0123456789abcdef0",
    "mcp_auth_token": "secret-token",
}
COMPLETE_CONFIG = {
    "aws:region": {"value": "eu-west-1", "secret": False},
    "wikibot:budget_email": {"value": "owner@example.com", "secret": False},
    "wikibot:workos_api_key": {"value": "sk_test_x", "secret": True},
    "wikibot:mcp_auth_token": {"value": "t" * 64, "secret": True},
}


@dataclass
class Result:
    status: int
    stdout: str
    stderr: str
    calls: list[dict]
    state: dict

    def pulumi(self) -> list[list[str]]:
        return [c["args"] for c in self.calls if c["tool"] == "pulumi"]

    def aws(self) -> list[list[str]]:
        return [c["args"] for c in self.calls if c["tool"] == "aws"]

    def ran(self, *words: str) -> list[dict]:
        return [c for c in self.calls if c["tool"] == "pulumi" and c["args"][: len(words)] == list(words)]


@pytest.fixture
def deploy(tmp_path):
    """A checkout-shaped scratch tree (infra/deploy, Pulumi.yaml, requirements.txt, a recording
    checks/build-lambdas) with the fakes first on PATH; `deploy(*args, **env)` runs the script."""
    repo = tmp_path / "repo"
    (repo / "infra").mkdir(parents=True)
    (repo / "checks").mkdir()
    for name in ("deploy", "Pulumi.yaml", "requirements.txt"):
        shutil.copy(INFRA / name, repo / "infra" / name)
    cloud = tmp_path / "cloud"
    cloud.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # Absolute interpreters: the Nix sandbox has no /usr/bin/env.
    for fake in ("pulumi", "aws"):
        text = (FAKES / fake).read_text().replace("#!/usr/bin/env python3", f"#!{sys.executable}", 1)
        (bin_dir / fake).write_text(text)
        (bin_dir / fake).chmod(0o755)
    build = repo / "checks" / "build-lambdas"
    build.write_text(
        f"#!{shutil.which('bash')}\n"
        'echo "{\\"tool\\": \\"build-lambdas\\", \\"args\\": [\\"$1\\"], \\"arches\\": \\"$ARCHES\\"}" >> "$FAKE_CLOUD/calls.jsonl"\n'
        'mkdir -p "$1" && for f in efs-probe git-probe mcp-server; do echo zip > "$1/$f-$ARCHES.zip"; done\n'
    )
    build.chmod(0o755)
    (cloud / "outputs.json").write_text(json.dumps(OUTPUTS))

    def run(*args: str, stdin: str = "", **env: str) -> Result:
        environment = {
            "PATH": os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ["PATH"]]),
            "HOME": str(tmp_path),
            "FAKE_CLOUD": str(cloud),
            "PULUMI_CONFIG_PASSPHRASE": "correct horse",
            "FAKE_AWS_IDENTITY": f"123456789012 {ARN}",
            **env,
        }
        environment = {k: v for k, v in environment.items() if v is not None}
        (cloud / "calls.jsonl").write_text("")
        done = subprocess.run(
            [shutil.which("bash"), str(repo / "infra" / "deploy"), *args],
            env=environment, input=stdin, capture_output=True, text=True, timeout=60,
        )
        calls = [json.loads(line) for line in (cloud / "calls.jsonl").read_text().splitlines()]
        state_file = cloud / "pulumi.json"
        state = json.loads(state_file.read_text()) if state_file.exists() else {}
        return Result(done.returncode, done.stdout, done.stderr, calls, state)

    def given(backend: str | None = "file://~", stacks: dict | None = None) -> None:
        """The fake Pulumi's state before the run."""
        (cloud / "pulumi.json").write_text(json.dumps({"backend": backend, "stacks": stacks or {}}))

    run.given = given
    run.repo = repo
    run.cloud = cloud
    return run


def system_tools() -> list[str]:
    """The directories of the ordinary tools infra/deploy uses (where they are: no /usr/bin in Nix)."""
    return sorted({str(Path(shutil.which(tool)).parent) for tool in ("sed", "head", "cat")})


def configured(outputs: dict | None = None, **extra) -> dict:
    config = {**copy.deepcopy(COMPLETE_CONFIG), **{f"wikibot:{k}": {"value": v, "secret": False} for k, v in extra.items()}}
    return {"dev": {"config": config, "outputs": outputs or {}}}


def test_help_describes_the_commands_and_checks(deploy):
    result = deploy("--help")
    assert result.status == 0
    for word in ("up", "preview", "destroy", "outputs", "--stack", "--backend", "budget_email",
                 "workos_api_key", "mcp_auth_token", "get-caller-identity", "WIKIBOT_LAMBDA_ZIPS"):
        assert word in result.stdout
    assert result.calls == [], "--help touches nothing"


def test_an_unknown_argument_is_a_usage_error(deploy):
    result = deploy("upp")
    assert result.status == 2
    assert "unknown argument upp" in result.stderr and "usage:" in result.stderr


def test_from_zero_a_new_stack_is_created_and_the_missing_settings_are_printed_exactly(deploy):
    deploy.given(stacks={})
    result = deploy("up", "--stack", "trial")
    assert result.status == 1
    assert ["stack", "init", "trial"] in result.pulumi()
    infra = deploy.repo / "infra"
    for line in (
        f"pulumi -C {infra} config set --stack trial budget_email you@example.com",
        f"pulumi -C {infra} config set --stack trial --secret workos_api_key sk_live_...",
        f'pulumi -C {infra} config set --stack trial --secret mcp_auth_token "$(openssl rand -hex 32)"',
    ):
        assert line in result.stderr
    assert not result.ran("up"), "nothing deployed without the settings"
    assert not result.aws(), "settings are checked before credentials"


def test_only_what_is_missing_is_listed(deploy):
    stacks = configured()
    del stacks["dev"]["config"]["wikibot:mcp_auth_token"]
    deploy.given(stacks=stacks)
    result = deploy("check")
    assert result.status == 1
    assert "--secret mcp_auth_token" in result.stderr
    assert "budget_email you@example.com" not in result.stderr and "workos_api_key sk_live" not in result.stderr


def test_with_oauth_on_an_access_policy_is_required(deploy):
    deploy.given(stacks=configured(authkit_domain="acme.authkit.app"))
    result = deploy("check")
    assert result.status == 1
    assert "config set --stack dev access_policy 'user:user_01...=rw, domain:example.com=ro'" in result.stderr
    assert "allow_any_user true" in result.stderr
    deploy.given(stacks=configured(authkit_domain="acme.authkit.app", allow_any_user="true"))
    assert deploy("check").status == 0


def test_a_secret_stored_in_plain_text_is_refused(deploy):
    stacks = configured()
    stacks["dev"]["config"]["wikibot:workos_api_key"]["secret"] = False
    deploy.given(stacks=stacks)
    result = deploy("check")
    assert result.status == 1
    assert "workos_api_key is stored in plain text in Pulumi.dev.yaml" in result.stderr
    assert "config set --stack dev --secret workos_api_key" in result.stderr


def test_without_a_backend_a_non_interactive_run_names_the_choices(deploy):
    deploy.given(backend=None)
    result = deploy("up")
    assert result.status == 1
    assert "no Pulumi backend" in result.stderr
    assert "--backend local" in result.stderr and "--backend cloud" in result.stderr and "s3://" in result.stderr
    assert result.pulumi() == [["whoami", "--verbose"]]


def test_backend_local_logs_in_to_the_file_backend(deploy):
    deploy.given(backend=None, stacks=configured())
    result = deploy("check", "--backend", "local")
    assert result.status == 0, result.stderr
    assert result.pulumi()[0] == ["login", "--local"]
    assert "Pulumi backend: file://~" in result.stderr


def test_a_self_managed_backend_needs_the_secrets_passphrase(deploy):
    deploy.given(stacks=configured())
    result = deploy("check", PULUMI_CONFIG_PASSPHRASE=None)
    assert result.status == 1
    assert "PULUMI_CONFIG_PASSPHRASE" in result.stderr
    assert not result.ran("stack", "init")


def test_missing_credentials_say_how_to_configure_them(deploy):
    deploy.given(stacks=configured())
    result = deploy("up", FAKE_AWS_IDENTITY=None)
    assert result.status == 1
    assert "no usable AWS credentials" in result.stderr
    assert "Unable to locate credentials" in result.stderr, "the CLI's own words"
    assert "aws configure" in result.stderr and "AWS_PROFILE" in result.stderr
    assert 'README "Deploying"' in result.stderr, "where the deployer's permissions are listed"
    assert not result.ran("up")


def test_the_credentials_check_uses_the_stacks_region_and_profile(deploy):
    stacks = configured()
    stacks["dev"]["config"]["aws:profile"] = {"value": "wikibot-admin", "secret": False}
    deploy.given(stacks=stacks)
    result = deploy("check")
    assert result.status == 0, result.stderr
    (identity,) = result.aws()
    assert identity[:2] == ["sts", "get-caller-identity"]
    assert identity[identity.index("--region") + 1] == "eu-west-1"
    assert identity[identity.index("--profile") + 1] == "wikibot-admin"
    assert f"AWS: {ARN} (account 123456789012, region eu-west-1)" in result.stderr


def test_up_builds_missing_zips_deploys_pins_the_choices_and_prints_the_next_steps(deploy):
    deploy.given(stacks=configured())
    result = deploy("up", "--yes")
    assert result.status == 0, result.stderr
    (build,) = [c for c in result.calls if c["tool"] == "build-lambdas"]
    assert build["arches"] == "arm64" and build["args"] == [str(deploy.repo / "dist")]
    (up,) = result.ran("up")
    assert up["args"] == ["up", "--stack", "dev", "--yes"]
    assert up["zips"] == str(deploy.repo / "dist"), "zips by environment, never stack config"
    assert up["cwd"] == str(deploy.repo / "infra")
    config = result.state["stacks"]["dev"]["config"]
    assert config["wikibot:availability_zone_id"]["value"] == "use1-az4"
    assert config["wikibot:nat_ami"]["value"] == "ami-0123456789abcdef0"
    assert not any("zip" in key for key in config), "no zip path in stack config"
    assert OUTPUTS["mcp_url"] in result.stdout
    assert "--show-secrets mcp_auth_token" in result.stdout and "secret-token" not in result.stdout
    assert "Resource Indicators" in result.stdout and "https://claude.ai/api/mcp/auth_callback" in result.stdout
    assert "config set --stack dev authkit_domain" in result.stdout, "OAuth is still off"


def test_a_domain_without_a_zone_ends_with_the_cname_to_create(deploy):
    deploy.given(stacks=configured(domain_name="wiki.example.com"))
    outputs = {**OUTPUTS, "mcp_url": "https://wiki.example.com/mcp", "domain_record": "cname",
               "domain_target": "d-0a1b2c3d4e.execute-api.eu-west-1.amazonaws.com"}
    (deploy.cloud / "outputs.json").write_text(json.dumps(outputs))
    result = deploy("up", "--yes")
    assert result.status == 0, result.stderr
    assert "https://wiki.example.com/mcp" in result.stdout
    assert "wiki.example.com.  CNAME  d-0a1b2c3d4e.execute-api.eu-west-1.amazonaws.com" in result.stdout
    # With a zone the stack made the record: nothing to do.
    (deploy.cloud / "outputs.json").write_text(json.dumps({**outputs, "domain_record": "route53"}))
    result = deploy("up", "--yes")
    assert result.status == 0, result.stderr
    assert "CNAME" not in result.stdout and "https://wiki.example.com/mcp" in result.stdout


def test_given_zips_are_used_as_they_are_and_pins_already_set_are_kept(deploy, tmp_path):
    zips = tmp_path / "result"
    zips.mkdir()
    for function in ("efs-probe", "git-probe", "mcp-server"):
        (zips / f"{function}-x86_64.zip").write_text("zip")
    deploy.given(stacks=configured(architecture="x86_64", availability_zone_id="use1-az6", authkit_domain="acme.authkit.app",
                                    access_policy="domain:example.com=rw"))
    result = deploy("up", WIKIBOT_LAMBDA_ZIPS=str(zips))
    assert result.status == 0, result.stderr
    assert not [c for c in result.calls if c["tool"] == "build-lambdas"]
    assert result.ran("up")[0]["zips"] == str(zips)
    config = result.state["stacks"]["dev"]["config"]
    assert config["wikibot:availability_zone_id"]["value"] == "use1-az6", "a set zone is never overwritten"
    assert ["config", "set", "--stack", "dev", "availability_zone_id", "use1-az4"] not in result.pulumi()
    assert "AuthKit domain: acme.authkit.app" in result.stdout


def test_given_zips_missing_one_for_the_architecture_are_refused(deploy, tmp_path):
    (tmp_path / "result").mkdir()
    (tmp_path / "result" / "mcp-server-arm64.zip").write_text("zip")
    deploy.given(stacks=configured())
    result = deploy("up", WIKIBOT_LAMBDA_ZIPS=str(tmp_path / "result"))
    assert result.status == 1
    assert "lacks efs-probe-arm64.zip git-probe-arm64.zip" in result.stderr
    assert not result.ran("up")


def test_a_failed_update_stops_before_pinning(deploy):
    deploy.given(stacks=configured())
    result = deploy("up", FAKE_PULUMI_UP_STATUS="1")
    assert result.status == 1
    assert not [a for a in result.pulumi() if a[:2] == ["config", "set"]]
    assert OUTPUTS["mcp_url"] not in result.stdout


def test_preview_and_extra_arguments_go_to_pulumi(deploy):
    deploy.given(stacks=configured())
    result = deploy("preview", "--", "--diff")
    assert result.status == 0, result.stderr
    assert result.ran("preview")[0]["args"] == ["preview", "--stack", "dev", "--diff"]
    assert not result.ran("up")


def test_outputs_needs_an_existing_stack_but_no_credentials(deploy):
    deploy.given(stacks=configured(outputs=OUTPUTS))
    result = deploy("outputs", FAKE_AWS_IDENTITY=None)
    assert result.status == 0, result.stderr
    assert OUTPUTS["mcp_url"] in result.stdout
    assert not result.aws()
    missing = deploy("outputs", "--stack", "nope")
    assert missing.status == 1 and "there is no stack nope" in missing.stderr
    assert not missing.ran("stack", "init"), "outputs never creates a stack"


def test_destroy_is_refused_while_the_file_system_is_protected_and_says_how(deploy):
    deploy.given(stacks=configured())
    result = deploy("destroy", "--yes")
    assert result.status == 1
    assert "the wiki file system is protected" in result.stderr
    assert "config set --stack dev protect_file_system false" in result.stderr
    assert not result.ran("destroy")


def test_destroy_runs_once_protection_is_off(deploy):
    deploy.given(stacks=configured(protect_file_system="false", efs_backup="true"))
    result = deploy("destroy", "--yes")
    assert result.status == 0, result.stderr
    assert result.ran("destroy")[0]["args"] == ["destroy", "--stack", "dev", "--yes"]
    assert "recovery points outlive the stack" in result.stderr


def test_a_python_without_pulumis_sdk_is_named_with_the_fix(deploy, tmp_path):
    fake_python = tmp_path / "nopython"
    fake_python.mkdir()
    (fake_python / "python3").write_text(f"#!{shutil.which('bash')}\nexit 1\n")
    (fake_python / "python3").chmod(0o755)
    result = deploy("check", PATH=os.pathsep.join([str(tmp_path / "bin"), str(fake_python), *system_tools()]))
    assert result.status == 1
    assert "cannot import Pulumi's SDK" in result.stderr
    assert "pip install --no-deps -r" in result.stderr


def test_no_pulumi_cli_is_named_with_where_to_get_it(deploy, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = deploy("check", PATH=str(empty))
    assert result.status == 1
    assert "the Pulumi CLI is not installed" in result.stderr and "nix run .#deploy" in result.stderr


def test_infra_venv_is_used_when_the_python_on_path_lacks_the_sdk(deploy, tmp_path):
    fake_python = tmp_path / "nopython"
    fake_python.mkdir()
    (fake_python / "python3").write_text(f"#!{shutil.which('bash')}\nexit 1\n")
    (fake_python / "python3").chmod(0o755)
    venv_bin = deploy.repo / "infra" / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    # Stands in for a venv's python3: the test's own interpreter, which has the SDK.
    (venv_bin / "python3").write_text(f'#!{shutil.which("bash")}\nexec {sys.executable} "$@"\n')
    (venv_bin / "python3").chmod(0o755)
    deploy.given(stacks=configured())
    result = deploy("check", PATH=os.pathsep.join([str(tmp_path / "bin"), str(fake_python), *system_tools()]))
    assert result.status == 0, result.stderr
    assert "every check passed" in result.stderr
