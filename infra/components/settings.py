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
# The NAT instance's type; the zone chosen for the stack must offer it (components/zone.py).
NAT_INSTANCE_TYPE = "t4g.nano"
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
# Availability zone ids (use1-az4, euc1-az2, apne1-az1) name the same physical zone in every
# account, unlike zone names. Local and Wavelength zones (use1-bos1-az1) cannot hold EFS.
ZONE_ID = re.compile(r"[a-z]{2,5}[0-9]+-az[0-9]+")
AMI_ID = re.compile(r"ami-(?:[0-9a-f]{8}|[0-9a-f]{17})")
# The front door's own domain (components/domain.py): a DNS name of at least two labels,
# lower case, no scheme, path, port, wildcard or trailing dot.
_DNS_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
DOMAIN_NAME = re.compile(rf"{_DNS_LABEL}(?:\.{_DNS_LABEL})+")
# An ACM certificate: its region is the second field (an HTTP API's domain needs one in the
# stack's own region).
CERTIFICATE_ARN = re.compile(r"arn:aws[a-z-]*:acm:([a-z0-9-]+):[0-9]{12}:certificate/[0-9a-f-]{36}")
HOSTED_ZONE_ID = re.compile(r"Z[0-9A-Z]{1,32}")
# CloudWatch Logs accepts only these retentions; 0 keeps the logs forever.
LOG_RETENTION_DAYS = (0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)
# The HTTP API's integration gives up after this (an HTTP API allows at most 30 s). The
# function must finish first, with a second to spare for a cold start, or the client gets a
# 503 while the function carries on (and may still commit a write).
API_INTEGRATION_TIMEOUT_SECONDS = 29
MAX_FUNCTION_TIMEOUT_SECONDS = API_INTEGRATION_TIMEOUT_SECONDS - 1
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
    availability_zone_id: str | None
    vpc_cidr: str
    public_subnet_cidr: str
    private_subnet_cidr: str
    egress: str
    architecture: str
    memory_mb: int
    timeout_seconds: int
    domain_name: str | None
    certificate_arn: str | None
    route53_zone_id: str | None
    authkit_domain: str
    access_policy: tuple[str, ...]
    allow_any_user: bool
    wiki: str
    budget_amount_usd: int
    budget_email: str
    log_retention_days: int
    efs_one_zone: bool
    maintenance_schedule: str
    nat_ami: str | None
    api_throttle_rate: float
    api_throttle_burst: int
    efs_backup: bool
    protect_file_system: bool
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
        if config.get("availability_zone") is not None:
            raise SettingsError(
                "availability_zone (a zone name) is no longer read: names map to different physical "
                "zones in each account. Set availability_zone_id instead (e.g. use1-az4; `aws ec2 "
                "describe-availability-zones` lists them), or leave it unset to let the stack choose"
            )
        if config.get("stage_name") is not None:
            raise SettingsError(
                "stage_name is no longer read: the MCP server is served at the root of its host (an HTTP "
                "API's $default stage, or your domain_name), where Claude.ai looks for the sign-in "
                "metadata (docs/decisions/0005-front-door.md). Remove it: `pulumi config rm stage_name`; "
                "the MCP URL changes, so register the new one in AuthKit and Claude.ai"
            )
        settings = Settings(
            stack=pulumi.get_stack(),
            region=region,
            availability_zone_id=config.get("availability_zone_id") or None,
            vpc_cidr=config.get("vpc_cidr") or "10.20.0.0/16",
            public_subnet_cidr=config.get("public_subnet_cidr") or "10.20.0.0/24",
            private_subnet_cidr=config.get("private_subnet_cidr") or "10.20.1.0/24",
            egress=config.get("egress") or "nat-instance",
            architecture=config.get("architecture") or "arm64",
            memory_mb=_int(config, "memory_mb", 512),
            timeout_seconds=_int(config, "timeout_seconds", 28),
            domain_name=_optional(config, "domain_name"),
            certificate_arn=_optional(config, "certificate_arn"),
            route53_zone_id=_optional(config, "route53_zone_id"),
            authkit_domain=config.get("authkit_domain") or "",
            access_policy=_policy_entries(config.get("access_policy")),
            allow_any_user=config.get_bool("allow_any_user") or False,
            wiki=config.get("wiki") or "wiki",
            budget_amount_usd=_int(config, "budget_amount_usd", 50),
            budget_email=config.require("budget_email"),
            log_retention_days=_int(config, "log_retention_days", 14),
            efs_one_zone=_bool(config, "efs_one_zone", True),
            maintenance_schedule=config.get("maintenance_schedule") or "rate(15 minutes)",
            nat_ami=config.get("nat_ami") or None,
            api_throttle_rate=_float(config, "api_throttle_rate", 10.0),
            api_throttle_burst=_int(config, "api_throttle_burst", 20),
            efs_backup=_bool(config, "efs_backup", False),
            protect_file_system=_bool(config, "protect_file_system", True),
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
        if not 1 <= self.timeout_seconds <= MAX_FUNCTION_TIMEOUT_SECONDS:
            raise SettingsError(
                f"timeout_seconds must be 1–{MAX_FUNCTION_TIMEOUT_SECONDS}, not {self.timeout_seconds}: the API "
                f"gives up after {API_INTEGRATION_TIMEOUT_SECONDS} s, and the function must finish before it"
            )
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
        self._validate_deployment_settings()
        self._check_domain()
        self._check_access()

    def _validate_deployment_settings(self) -> None:
        """The zone, stage, logs, throttling, NAT image and budget settings."""
        if self.availability_zone_id is not None and not ZONE_ID.fullmatch(self.availability_zone_id):
            raise SettingsError(
                f"availability_zone_id must be a zone id such as use1-az4 (not a zone name like us-east-1a, "
                f"nor a local zone), not {self.availability_zone_id!r}"
            )
        if self.log_retention_days not in LOG_RETENTION_DAYS:
            raise SettingsError(
                f"log_retention_days must be one of {', '.join(map(str, LOG_RETENTION_DAYS))} "
                f"(0 keeps logs forever), not {self.log_retention_days}"
            )
        if self.budget_amount_usd < 1:
            raise SettingsError(f"budget_amount_usd must be at least 1, not {self.budget_amount_usd}")
        if not 0 < self.api_throttle_rate <= 10000:
            raise SettingsError(
                f"api_throttle_rate must be more than 0 and at most 10000 requests per second, not {self.api_throttle_rate}"
            )
        if not 1 <= self.api_throttle_burst <= 5000:
            raise SettingsError(f"api_throttle_burst must be 1–5000 requests, not {self.api_throttle_burst}")
        if self.nat_ami is not None and not AMI_ID.fullmatch(self.nat_ami):
            raise SettingsError(f"nat_ami must be an image id such as ami-0123456789abcdef0, not {self.nat_ami!r}")

    def _check_domain(self) -> None:
        """The front door's own domain: a name, and a certificate for it (given, or made and
        validated in the Route 53 zone)."""
        if self.domain_name is None:
            for setting in ("certificate_arn", "route53_zone_id"):
                if getattr(self, setting) is not None:
                    raise SettingsError(
                        f"{setting} is for the stack's own domain, but domain_name is not set: "
                        "`pulumi config set domain_name wiki.example.com`, or remove it"
                    )
            return
        if not DOMAIN_NAME.fullmatch(self.domain_name) or len(self.domain_name) > 253:
            raise SettingsError(
                f"domain_name must be a lower-case DNS name such as wiki.example.com (no https://, path, "
                f"port, wildcard or trailing dot), not {self.domain_name!r}"
            )
        if self.certificate_arn is None and self.route53_zone_id is None:
            raise SettingsError(
                f"domain_name {self.domain_name} needs a TLS certificate: set certificate_arn (an issued ACM "
                f"certificate for it in {self.region}), or route53_zone_id (the hosted zone of the domain) "
                "to have the stack request one and validate it there"
            )
        if self.certificate_arn is not None:
            arn = CERTIFICATE_ARN.fullmatch(self.certificate_arn)
            if not arn:
                raise SettingsError(
                    "certificate_arn must be an ACM certificate ARN "
                    f"(arn:aws:acm:{self.region}:123456789012:certificate/…), not {self.certificate_arn!r}"
                )
            if arn.group(1) != self.region:
                raise SettingsError(
                    f"certificate_arn is in {arn.group(1)}, but the API's domain needs a certificate in the "
                    f"stack's region, {self.region} (a regional endpoint; request or import it there)"
                )
        if self.route53_zone_id is not None and not HOSTED_ZONE_ID.fullmatch(self.route53_zone_id):
            raise SettingsError(
                f"route53_zone_id must be a hosted zone id such as Z0123456789ABCDEFGHIJ (without "
                f"/hostedzone/), not {self.route53_zone_id!r}"
            )

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


# Pulumi's typed getters return None for an absent setting; `get_int(...) or default` would
# also turn an explicit 0 into the default, so these keep whatever was set and leave the
# judging to validate().
def _int(config: pulumi.Config, key: str, default: int) -> int:
    value = config.get_int(key)
    return default if value is None else value


def _float(config: pulumi.Config, key: str, default: float) -> float:
    value = config.get_float(key)
    return default if value is None else value


def _bool(config: pulumi.Config, key: str, default: bool) -> bool:
    value = config.get_bool(key)
    return default if value is None else value


def _optional(config: pulumi.Config, key: str) -> str | None:
    """A setting that is off when absent or empty."""
    value = (config.get(key) or "").strip()
    return value or None


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
