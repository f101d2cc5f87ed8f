"""Runs the Pulumi program against `pulumi.runtime.set_mocks` and records every resource it
registers, so the tests can assert properties of the stack without the Pulumi CLI or AWS.

`stack(...)` runs `__main__.py` afresh with the given config and returns a `Stack`: the
recorded resources and the program's module globals.
"""

from __future__ import annotations

import asyncio
import runpy
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pytest

INFRA = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(INFRA))

SECRET_SIG = "4dabf18193072939515e22adb298388d"
WORKOS_KEY = "sk_test_workos_key_for_mocks"
MCP_TOKEN = "mcp-static-token-for-mocks-0123456789abcdef"
BASE_CONFIG = {
    "wikibot:budget_email": "owner@example.com",
    "wikibot:workos_api_key": WORKOS_KEY,
    "wikibot:mcp_auth_token": MCP_TOKEN,
}
SECRET_KEYS = ["wikibot:workos_api_key", "wikibot:mcp_auth_token"]
# The mock account's zones: ids map to names as AWS shuffles them per account.
ZONE_NAMES = {
    "use1-az1": "us-east-1c",
    "use1-az2": "us-east-1e",
    "use1-az3": "us-east-1a",
    "use1-az4": "us-east-1b",
    "use1-az5": "us-east-1f",
    "use1-az6": "us-east-1d",
}
# Where the mock account offers the NAT instance type (t4g.nano): not in use1-az1 nor use1-az3,
# so the automatic choice is use1-az2 (us-east-1e).
NAT_ZONES = ["use1-az2", "use1-az4", "use1-az5", "use1-az6"]
MOCK_AMI = "ami-0123456789abcdef0"
# What API Gateway answers for a regional custom domain: the name to point it at, and the
# hosted zone an alias record names.
API_DOMAIN_TARGET = "d-0a1b2c3d4e.execute-api.us-east-1.amazonaws.com"
API_DOMAIN_ZONE = "Z1UJRXOUMOOFQ8"


@dataclass
class Resource:
    typ: str
    name: str
    inputs: dict
    provider: str | None

    @property
    def id(self) -> str:
        return f"{self.name}-id"

    def plain(self, key: str):
        """An input with any secret wrapper removed."""
        return unwrap(self.inputs.get(key))


def unwrap(value):
    if isinstance(value, dict) and value.get(SECRET_SIG):
        return unwrap(value["value"])
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def is_secret(value) -> bool:
    return isinstance(value, dict) and SECRET_SIG in value


class Recorder(pulumi.runtime.Mocks):
    """Echoes inputs back as state, adding the outputs the program reads."""

    def __init__(self, zones: list[str] | None = None, nat_zones: list[str] | None = None) -> None:
        self.resources: list[Resource] = []
        self.calls: list[tuple[str, dict]] = []
        self.zones = sorted(ZONE_NAMES) if zones is None else zones
        self.nat_zones = NAT_ZONES if nat_zones is None else nat_zones

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.resources.append(Resource(args.typ, args.name, dict(args.inputs), args.provider))
        state = dict(args.inputs)
        state.setdefault("arn", f"arn:aws:mock:us-east-1:123456789012:{args.name}")
        extra = {
            "aws:apigatewayv2/api:Api": {
                "apiEndpoint": f"https://{args.name}-id.execute-api.us-east-1.amazonaws.com",
                "executionArn": f"arn:aws:execute-api:us-east-1:123456789012:{args.name}-id",
            },
            "aws:apigatewayv2/domainName:DomainName": {
                "domainNameConfiguration": {
                    **args.inputs.get("domainNameConfiguration", {}),
                    "targetDomainName": API_DOMAIN_TARGET,
                    "hostedZoneId": API_DOMAIN_ZONE,
                },
            },
            "aws:acm/certificate:Certificate": {
                "domainValidationOptions": [
                    {
                        "domainName": args.inputs.get("domainName"),
                        "resourceRecordName": f"_0a1b2c.{args.inputs.get('domainName')}.",
                        "resourceRecordType": "CNAME",
                        "resourceRecordValue": "_3d4e5f.acm-validations.aws.",
                    }
                ],
            },
            "aws:route53/record:Record": {"fqdn": args.inputs.get("name")},
            "aws:lambda/function:Function": {
                "invoke_arn": f"arn:aws:apigateway:us-east-1:lambda:path/functions/{args.name}/invocations",
            },
            "aws:ec2/instance:Instance": {"primary_network_interface_id": f"eni-{args.name}"},
            # AWS resolves a subnet's zone id to this account's zone name.
            "aws:ec2/subnet:Subnet": {"availability_zone": ZONE_NAMES.get(args.inputs.get("availabilityZoneId"))},
        }
        state.update(extra.get(args.typ, {}))
        return [f"{args.name}-id", state]

    def call(self, args: pulumi.runtime.MockCallArgs):
        self.calls.append((args.token, dict(args.args)))
        if args.token == "aws:ec2/getAmi:getAmi":
            return {"id": MOCK_AMI, "architecture": "arm64", "name": "al2023-ami-minimal-arm64"}
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            return {"zoneIds": self.zones, "names": [ZONE_NAMES[z] for z in self.zones], "id": "us-east-1"}
        if args.token == "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings":
            return {
                "locations": self.nat_zones,
                "instanceTypes": ["t4g.nano"] * len(self.nat_zones),
                "locationTypes": ["availability-zone-id"] * len(self.nat_zones),
                "id": "us-east-1",
            }
        raise Exception(f"the mocks do not answer {args.token}")


@dataclass
class Stack:
    resources: list[Resource]
    program: dict
    calls: list[tuple[str, dict]]
    # Each resource's options (protect, ignore_changes, …), which the mocks do not see.
    options: dict[str, pulumi.ResourceOptions]

    def of_type(self, typ: str) -> list[Resource]:
        return [r for r in self.resources if r.typ == typ]

    def one(self, typ: str, name_contains: str = "") -> Resource:
        found = [r for r in self.of_type(typ) if name_contains in r.name]
        assert len(found) == 1, f"expected one {typ} named *{name_contains}*, found {[r.name for r in found]}"
        return found[0]

    def secret(self, output: pulumi.Output) -> bool:
        return asyncio.get_event_loop().run_until_complete(output.is_secret())

    def resolve(self, output: pulumi.Output):
        return asyncio.get_event_loop().run_until_complete(output.future())


@pytest.fixture(scope="session")
def zips(tmp_path_factory) -> Path:
    """A directory with a (tiny) zip for every function and architecture."""
    directory = tmp_path_factory.mktemp("zips")
    for function in ("efs-probe", "git-probe", "mcp-server"):
        for arch in ("arm64", "x86_64"):
            with zipfile.ZipFile(directory / f"{function}-{arch}.zip", "w") as archive:
                archive.writestr("bootstrap", "#!/bin/sh\n")
    return directory


@pytest.fixture
def run_stack(monkeypatch, zips):
    """Runs the program with extra config (and WIKIBOT_LAMBDA_ZIPS, unless given)."""

    def run(
        config: dict | None = None,
        stack: str = "dev",
        zips_dir: str | None = str(zips),
        zones: list[str] | None = None,
        nat_zones: list[str] | None = None,
    ) -> Stack:
        if zips_dir is None:
            monkeypatch.delenv("WIKIBOT_LAMBDA_ZIPS", raising=False)
        else:
            monkeypatch.setenv("WIKIBOT_LAMBDA_ZIPS", zips_dir)
        mocks = Recorder(zones, nat_zones)
        pulumi.runtime.set_mocks(mocks, project="wikibot", stack=stack, preview=False)
        pulumi.runtime.set_all_config({**BASE_CONFIG, **(config or {})}, SECRET_KEYS)
        program: dict = {}
        options: dict[str, pulumi.ResourceOptions] = {}

        def record_options(args: pulumi.ResourceTransformationArgs):
            options[args.name] = args.opts
            return None

        @pulumi.runtime.test
        def execute():
            pulumi.runtime.register_stack_transformation(record_options)
            program.update(runpy.run_path(str(INFRA / "__main__.py")))

        execute()
        return Stack(mocks.resources, program, mocks.calls, options)

    return run


@pytest.fixture
def dev(run_stack) -> Stack:
    return run_stack()
