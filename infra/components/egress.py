"""Internet egress for the private subnet, as chosen by the `egress` setting (see
docs/decisions/0002-egress.md):

- `nat-instance` (default): a t4g.nano running Amazon Linux 2023 that forwards and masquerades
  traffic from the private subnet (boot script: nat_instance.sh); about $7/month. It is
  replaced when its script changes; its image is the `nat_ami` setting, or, unset, the newest
  Amazon Linux 2023 minimal image at creation, kept until the setting says otherwise;
- `nat-gateway`: the managed NAT gateway; about $33/month before data;
- `none`: no route out. The MCP server then cannot fetch AuthKit's keys, so only the static
  token works.

This component must not open anything but what the private subnet needs to get out.
"""

from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_aws as aws

from .settings import NAT_INSTANCE_TYPE, Settings
from .vpc import Vpc

NAT_SCRIPT = Path(__file__).with_name("nat_instance.sh")


def nat_user_data(private_subnet_cidr: str) -> str:
    """The NAT instance's boot script (nat_instance.sh) for this private subnet."""
    return NAT_SCRIPT.read_text().replace("@PRIVATE_CIDR@", private_subnet_cidr)


class Egress(pulumi.ComponentResource):
    def __init__(self, name: str, settings: Settings, network: Vpc, opts: pulumi.ResourceOptions | None = None):
        super().__init__("wikibot:network:Egress", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        prefix = settings.prefix
        self.mode = settings.egress
        self.route: aws.ec2.Route | None = None
        self.nat_ami: pulumi.Output[str] | None = None

        if settings.egress == "nat-gateway":
            address = aws.ec2.Eip(f"{name}-nat-eip", domain="vpc", tags={"Name": f"{prefix}-nat"}, opts=child)
            gateway = aws.ec2.NatGateway(
                f"{name}-nat-gateway",
                allocation_id=address.id,
                subnet_id=network.public_subnet.id,
                tags={"Name": f"{prefix}-nat"},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[network.internet_gateway]),
            )
            self.route = self._default_route(name, network, nat_gateway_id=gateway.id)
        elif settings.egress == "nat-instance":
            architecture = "arm64" if NAT_INSTANCE_TYPE.startswith("t4g") else "x86_64"
            if settings.nat_ami:
                image: pulumi.Input[str] = settings.nat_ami
            else:
                image = aws.ec2.get_ami_output(
                    most_recent=True,
                    owners=["amazon"],
                    filters=[
                        aws.ec2.GetAmiFilterArgs(name="name", values=[f"al2023-ami-minimal-*-{architecture}"]),
                        aws.ec2.GetAmiFilterArgs(name="architecture", values=[architecture]),
                    ],
                    opts=pulumi.InvokeOutputOptions(parent=self),
                ).id
            group = aws.ec2.SecurityGroup(
                f"{name}-nat-sg",
                vpc_id=network.vpc.id,
                description="wikibot NAT instance: forward traffic from the private subnet",
                tags={"Name": f"{prefix}-nat"},
                opts=child,
            )
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-nat-from-private",
                security_group_id=group.id,
                cidr_ipv4=settings.private_subnet_cidr,
                ip_protocol="-1",
                description="everything the private subnet sends out",
                opts=child,
            )
            aws.vpc.SecurityGroupEgressRule(
                f"{name}-nat-out",
                security_group_id=group.id,
                cidr_ipv4="0.0.0.0/0",
                ip_protocol="-1",
                description="to the internet",
                opts=child,
            )
            instance = aws.ec2.Instance(
                f"{name}-nat-instance",
                ami=image,
                instance_type=NAT_INSTANCE_TYPE,
                subnet_id=network.public_subnet.id,
                vpc_security_group_ids=[group.id],
                associate_public_ip_address=True,
                source_dest_check=False,
                user_data=nat_user_data(settings.private_subnet_cidr),
                # A changed boot script only takes effect on a new instance.
                user_data_replace_on_change=True,
                metadata_options=aws.ec2.InstanceMetadataOptionsArgs(http_tokens="required"),
                tags={"Name": f"{prefix}-nat"},
                opts=pulumi.ResourceOptions(
                    parent=self,
                    depends_on=[network.internet_gateway],
                    # Unpinned, the image lookup finds a newer one after every Amazon Linux
                    # release; the instance keeps the one it was created with until nat_ami
                    # names another (README "Updating the NAT instance").
                    ignore_changes=[] if settings.nat_ami else ["ami"],
                ),
            )
            # The image the instance runs (with ignore_changes, the state's, not the lookup's).
            self.nat_ami = instance.ami
            self.route = self._default_route(
                name, network, network_interface_id=instance.primary_network_interface_id
            )

        self.register_outputs({"mode": self.mode})

    def _default_route(self, name: str, network: Vpc, **target: pulumi.Input[str]) -> aws.ec2.Route:
        """The private subnet's route to the internet, through `target`."""
        return aws.ec2.Route(
            f"{name}-private-default",
            route_table_id=network.private_route_table.id,
            destination_cidr_block="0.0.0.0/0",
            opts=pulumi.ResourceOptions(parent=self),
            **target,
        )
