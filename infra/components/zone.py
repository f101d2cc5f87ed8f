"""The stack's availability zone, by zone id. Zone names (`us-east-1a`) map to different
physical zones in each account, and some zones lack what the stack needs, so the zone is
named by id (`use1-az4`), the same everywhere:

- `availability_zone_id` set: it must be an available zone of the region (and offer the NAT
  instance type when `egress` is `nat-instance`), or the deployment stops naming the setting;
- unset: the first zone id, in sorted order, that is available without opting in, offers the
  NAT instance type when one is needed, and is not one of the old zones many services skip.
  The choice is exported as `availability_zone_id`; `infra/deploy` pins it in the stack's
  config after the first deployment, so a later change in AWS's offerings cannot move the
  subnets (and with them the file system).

This component must not create resources: it only looks the zone up.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from .settings import NAT_INSTANCE_TYPE, Settings, SettingsError

# Never chosen automatically: us-east-1's oldest zone, which Fargate, MSK brokers, RDS Proxy
# and the newer (Graviton) instance families do not support. Still accepted when set by hand.
AVOIDED_ZONE_IDS = frozenset({"use1-az3"})


def choose_zone(
    region: str,
    available: list[str],
    offering_nat: list[str] | None,
    requested: str | None,
) -> str:
    """The zone id to use, or a SettingsError saying why none fits.

    `available`: the region's available zone ids; `offering_nat`: the zone ids offering the NAT
    instance type (None when the stack has no NAT instance); `requested`: the setting.
    """
    if requested is not None:
        if requested not in available:
            raise SettingsError(
                f"availability_zone_id {requested!r} is not an available zone of {region} "
                f"(available: {', '.join(sorted(available)) or 'none'})"
            )
        if offering_nat is not None and requested not in offering_nat:
            raise SettingsError(
                f"availability_zone_id {requested!r} does not offer {NAT_INSTANCE_TYPE}, the NAT instance type "
                f"(zones that do: {', '.join(sorted(offering_nat)) or 'none'}); choose one of those or another egress"
            )
        return requested
    candidates = [
        zone
        for zone in sorted(available)
        if zone not in AVOIDED_ZONE_IDS and (offering_nat is None or zone in offering_nat)
    ]
    if not candidates:
        raise SettingsError(
            f"no zone of {region} fits the stack (available: {', '.join(sorted(available)) or 'none'}; "
            f"offering {NAT_INSTANCE_TYPE}: {', '.join(sorted(offering_nat or [])) or 'none'}); "
            "set availability_zone_id, or egress to nat-gateway or none"
        )
    return candidates[0]


class AvailabilityZone(pulumi.ComponentResource):
    def __init__(self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None):
        super().__init__("wikibot:network:AvailabilityZone", name, None, opts)
        # The invokes inherit this component's provider (the stack's region) through `parent`.
        invoke = pulumi.InvokeOutputOptions(parent=self)
        zones = aws.get_availability_zones_output(
            state="available",
            filters=[aws.GetAvailabilityZonesFilterArgs(name="opt-in-status", values=["opt-in-not-required"])],
            opts=invoke,
        )
        if settings.egress == "nat-instance":
            offering = aws.ec2.get_instance_type_offerings_output(
                location_type="availability-zone-id",
                filters=[aws.ec2.GetInstanceTypeOfferingsFilterArgs(name="instance-type", values=[NAT_INSTANCE_TYPE])],
                opts=invoke,
            ).locations
        else:
            offering = pulumi.Output.from_input(None)
        self.zone_id: pulumi.Output[str] = pulumi.Output.all(zones.zone_ids, offering).apply(
            lambda args: choose_zone(settings.region, list(args[0] or []), args[1], settings.availability_zone_id)
        )
        self.register_outputs({"zone_id": self.zone_id})
