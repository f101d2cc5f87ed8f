"""Stack settings: every value the program uses, read once from Pulumi config (and the one
environment variable that must not live in config), validated, with defaults.

This module must not create resources; it only describes the stack.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pulumi

PROJECT_TAG = "wikibot-io"
EGRESS_CHOICES = ("nat-instance", "nat-gateway", "none")
ARCHITECTURES = ("arm64", "x86_64")
FUNCTIONS = ("efs-probe", "git-probe", "mcp-server")
# The directory of built zips (<function>-<arch>.zip) comes from the environment, never from
# stack config: a Nix store path written into Pulumi.<stack>.yaml would go stale.
ZIPS_ENV = "WIKIBOT_LAMBDA_ZIPS"
MOUNT_PATH = "/mnt/efs"
# EventBridge schedule expressions: `rate(N unit)` (singular unit for 1, plural otherwise) or
# `cron(minutes hours day-of-month month day-of-week year)`; `off` turns the schedule off.
MAINTENANCE_OFF = "off"
RATE_EXPRESSION = re.compile(r"rate\(([1-9][0-9]*) (minute|hour|day)(s?)\)")
CRON_EXPRESSION = re.compile(r"cron\(([^()]*)\)")
# Access policy entries (the function's MCP_ALLOW; the authoritative parser is
# src/auth/policy.rs, which the function runs at start-up): kind:value=rw|ro.
_LABEL = r"(?!-)(?:[A-Za-z0-9-]|[^\x00-\x7f])+(?<!-)"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})+"
POLICY_ENTRY = re.compile(
    rf"(?:user:user_[A-Za-z0-9]+|org:org_[A-Za-z0-9]+|email:[^@\s,=]+@{_DOMAIN}|domain:{_DOMAIN})=(?:rw|ro)",
    re.IGNORECASE,
)
POLICY_USAGE = (
    "entries look like user:user_01…=rw, email:ada@example.com=ro, domain:example.com=rw or "
    "org:org_01…=ro (rw: read-write, ro: read-only)"
)


class SettingsError(Exception):
    """A setting is missing or wrong; the message says which and how to fix it."""


@dataclass(frozen=True)
class Settings:
    stack: str
    region: str
    availability_zone: str
    vpc_cidr: str
    public_subnet_cidr: str
    private_subnet_cidr: str
    egress: str
    architecture: str
    memory_mb: int
    timeout_seconds: int
    stage_name: str
    authkit_domain: str
    access_policy: tuple[str, ...]
    allow_any_user: bool
    wiki: str
    budget_amount_usd: int
    budget_email: str
    log_retention_days: int
    efs_one_zone: bool
    maintenance_schedule: str
    zips_dir: str | None
    workos_api_key: pulumi.Output[str]
    mcp_auth_token: pulumi.Output[str]

    @property
    def tags(self) -> dict[str, str]:
        return {"project": PROJECT_TAG, "environment": self.stack}

    @property
    def prefix(self) -> str:
        """Name prefix for resources whose names must be unique in the account."""
        return f"wikibot-{self.stack}"

    @property
    def maintenance_enabled(self) -> bool:
        return self.maintenance_schedule != MAINTENANCE_OFF

    @property
    def mcp_allow(self) -> str:
        """The access policy as the function reads it (MCP_ALLOW)."""
        return ", ".join(self.access_policy)

    @property
    def stale_lock_seconds(self) -> int:
        """A lock older than the function timeout plus a margin belongs to a dead writer."""
        return self.timeout_seconds + 30

    def zip_path(self, function: str) -> Path:
        """The built zip of `function` for this stack's architecture; a clear error if absent."""
        if not self.zips_dir:
            raise SettingsError(
                f"{ZIPS_ENV} is not set: point it at the directory of built Lambda zips "
                "(`nix build .#lambdas` → ./result, or `checks/build-lambdas dist` → ./dist)"
            )
        path = Path(self.zips_dir) / f"{function}-{self.architecture}.zip"
        if not path.is_file():
            raise SettingsError(
                f"{path} does not exist: {ZIPS_ENV}={self.zips_dir} must hold "
                f"{', '.join(f'{f}-{self.architecture}.zip' for f in FUNCTIONS)}; build them first"
            )
        return path

    @staticmethod
    def load() -> Settings:
        config = pulumi.Config()
        region = pulumi.Config("aws").get("region") or "us-east-1"
        settings = Settings(
            stack=pulumi.get_stack(),
            region=region,
            availability_zone=config.get("availability_zone") or f"{region}a",
            vpc_cidr=config.get("vpc_cidr") or "10.20.0.0/16",
            public_subnet_cidr=config.get("public_subnet_cidr") or "10.20.0.0/24",
            private_subnet_cidr=config.get("private_subnet_cidr") or "10.20.1.0/24",
            egress=config.get("egress") or "nat-instance",
            architecture=config.get("architecture") or "arm64",
            memory_mb=config.get_int("memory_mb") or 512,
            timeout_seconds=config.get_int("timeout_seconds") or 30,
            stage_name=config.get("stage_name") or "prod",
            authkit_domain=config.get("authkit_domain") or "",
            access_policy=_policy_entries(config.get("access_policy")),
            allow_any_user=config.get_bool("allow_any_user") or False,
            wiki=config.get("wiki") or "wiki",
            budget_amount_usd=config.get_int("budget_amount_usd") or 50,
            budget_email=config.require("budget_email"),
            log_retention_days=config.get_int("log_retention_days") or 14,
            efs_one_zone=config.get_bool("efs_one_zone") if config.get("efs_one_zone") is not None else True,
            maintenance_schedule=config.get("maintenance_schedule") or "rate(15 minutes)",
            zips_dir=os.environ.get(ZIPS_ENV) or None,
            workos_api_key=config.require_secret("workos_api_key"),
            mcp_auth_token=config.require_secret("mcp_auth_token"),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.egress not in EGRESS_CHOICES:
            raise SettingsError(f"egress must be one of {', '.join(EGRESS_CHOICES)}, not {self.egress!r}")
        if self.architecture not in ARCHITECTURES:
            raise SettingsError(f"architecture must be arm64 or x86_64, not {self.architecture!r}")
        if not 128 <= self.memory_mb <= 10240:
            raise SettingsError(f"memory_mb must be 128–10240, not {self.memory_mb}")
        if not 1 <= self.timeout_seconds <= 900:
            raise SettingsError(f"timeout_seconds must be 1–900, not {self.timeout_seconds}")
        try:
            vpc = ipaddress.ip_network(self.vpc_cidr)
            subnets = [ipaddress.ip_network(self.public_subnet_cidr), ipaddress.ip_network(self.private_subnet_cidr)]
        except ValueError as e:
            raise SettingsError(f"a CIDR setting is not a network: {e}") from e
        if not all(subnet.subnet_of(vpc) for subnet in subnets):
            raise SettingsError("public_subnet_cidr and private_subnet_cidr must lie inside vpc_cidr")
        if subnets[0].overlaps(subnets[1]):
            raise SettingsError("public_subnet_cidr and private_subnet_cidr must not overlap")
        if "@" not in self.budget_email:
            raise SettingsError(f"budget_email must be an e-mail address, not {self.budget_email!r}")
        if self.maintenance_enabled:
            _check_schedule("maintenance_schedule", self.maintenance_schedule)
        self._check_access()

    def _check_access(self) -> None:
        """The function refuses to start on these too; refusing here fails the deployment
        before a broken function replaces a working one."""
        for entry in self.access_policy:
            if not POLICY_ENTRY.fullmatch(entry):
                raise SettingsError(f"access_policy: {entry!r} is not an entry; {POLICY_USAGE}")
        if not self.authkit_domain:
            if self.access_policy or self.allow_any_user:
                raise SettingsError(
                    "access_policy and allow_any_user apply to OAuth sign-ins, but authkit_domain is not set"
                )
            return
        if self.access_policy and self.allow_any_user:
            raise SettingsError(
                "allow_any_user opens the wiki to every signed-in user, which makes access_policy "
                "pointless; set one of them"
            )
        if not self.access_policy and not self.allow_any_user:
            raise SettingsError(
                "authkit_domain turns OAuth on, so say who may use the wiki: "
                "`pulumi config set access_policy 'user:user_01…=rw, domain:example.com=ro'` "
                f"({POLICY_USAGE}), or `pulumi config set allow_any_user true` to let every user "
                "AuthKit signs in read and write"
            )


def _policy_entries(raw: str | None) -> tuple[str, ...]:
    """`access_policy` as a comma- or newline-separated string, or a YAML list of entries
    (which Pulumi hands over as JSON)."""
    if not raw or not raw.strip():
        return ()
    if raw.lstrip().startswith("["):
        try:
            items = json.loads(raw)
        except ValueError as e:
            raise SettingsError(f"access_policy: not a list of entries: {e}") from e
        if not all(isinstance(item, str) for item in items):
            raise SettingsError(f"access_policy: every list item must be a string entry; {POLICY_USAGE}")
    else:
        items = re.split(r"[,\n]", raw)
    return tuple(entry.strip() for entry in items if entry.strip())


def _check_schedule(setting: str, expression: str) -> None:
    """Refuses what EventBridge would refuse at deploy time, naming the setting."""
    usage = (
        f"{setting} must be `rate(N unit)` (e.g. `rate(15 minutes)`, `rate(1 hour)`), "
        f"`cron(minutes hours day-of-month month day-of-week year)` or `{MAINTENANCE_OFF}`"
    )
    if rate := RATE_EXPRESSION.fullmatch(expression):
        count, unit, plural = rate.groups()
        if (count == "1") == bool(plural):
            raise SettingsError(
                f"{setting}: EventBridge wants `rate(1 {unit})` for one {unit} and a plural unit "
                f"otherwise (`rate(N {unit}s)`), not {expression!r}"
            )
    elif cron := CRON_EXPRESSION.fullmatch(expression):
        fields = cron.group(1).split()
        if len(fields) != 6:
            raise SettingsError(f"{usage}; a cron expression has six fields, not {len(fields)} in {expression!r}")
        if "?" not in (fields[2], fields[4]):
            raise SettingsError(
                f"{setting}: one of day-of-month and day-of-week must be `?` in {expression!r}"
            )
    else:
        raise SettingsError(f"{usage}, not {expression!r}")
