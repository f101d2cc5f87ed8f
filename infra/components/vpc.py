"""P0-1: the network. One VPC with a public and a private subnet in one availability zone
(chosen by zone id: components/zone.py), an internet gateway for the public side, gateway
endpoints for S3 and DynamoDB on the private route table, and the two security groups: the
Lambda functions' (egress only: HTTPS out, NFS to EFS) and EFS's (NFS in, only from the
Lambda group).

Internet egress for the private subnet is a separate choice (components/egress.py). This
component must not know about the functions or the file system beyond their groups.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from .settings import Settings
from .zone import AvailabilityZone

NFS_PORT = 2049
HTTPS_PORT = 443


class Vpc(pulumi.ComponentResource):
    def __init__(self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None):
        super().__init__("wikibot:network:Vpc", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        prefix = settings.prefix
        self.zone = AvailabilityZone(f"{name}-zone", settings, opts=child)

        self.vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=settings.vpc_cidr,
            enable_dns_support=True,
            enable_dns_hostnames=True,  # EFS mount targets are found by DNS name
            tags={"Name": prefix},
            opts=child,
        )
        self.internet_gateway = aws.ec2.InternetGateway(
            f"{name}-igw", vpc_id=self.vpc.id, tags={"Name": f"{prefix}-igw"}, opts=child
        )
        self.public_subnet = aws.ec2.Subnet(
            f"{name}-public",
            vpc_id=self.vpc.id,
            cidr_block=settings.public_subnet_cidr,
            availability_zone_id=self.zone.zone_id,
            map_public_ip_on_launch=False,
            tags={"Name": f"{prefix}-public", "tier": "public"},
            opts=child,
        )
        self.private_subnet = aws.ec2.Subnet(
            f"{name}-private",
            vpc_id=self.vpc.id,
            cidr_block=settings.private_subnet_cidr,
            availability_zone_id=self.zone.zone_id,
            map_public_ip_on_launch=False,
            tags={"Name": f"{prefix}-private", "tier": "private"},
            opts=child,
        )

        self.public_route_table = aws.ec2.RouteTable(
            f"{name}-public-rt", vpc_id=self.vpc.id, tags={"Name": f"{prefix}-public"}, opts=child
        )
        aws.ec2.Route(
            f"{name}-public-default",
            route_table_id=self.public_route_table.id,
            destination_cidr_block="0.0.0.0/0",
            gateway_id=self.internet_gateway.id,
            opts=child,
        )
        aws.ec2.RouteTableAssociation(
            f"{name}-public-assoc", subnet_id=self.public_subnet.id, route_table_id=self.public_route_table.id, opts=child
        )
        self.private_route_table = aws.ec2.RouteTable(
            f"{name}-private-rt", vpc_id=self.vpc.id, tags={"Name": f"{prefix}-private"}, opts=child
        )
        aws.ec2.RouteTableAssociation(
            f"{name}-private-assoc", subnet_id=self.private_subnet.id, route_table_id=self.private_route_table.id, opts=child
        )

        # Free gateway endpoints: S3 and DynamoDB traffic from the private subnet never
        # needs the (paid) egress path.
        self.gateway_endpoints = [
            aws.ec2.VpcEndpoint(
                f"{name}-{service}",
                vpc_id=self.vpc.id,
                vpc_endpoint_type="Gateway",
                service_name=f"com.amazonaws.{settings.region}.{service}",
                route_table_ids=[self.private_route_table.id],
                tags={"Name": f"{prefix}-{service}"},
                opts=child,
            )
            for service in ("s3", "dynamodb")
        ]

        self.lambda_security_group = aws.ec2.SecurityGroup(
            f"{name}-lambda-sg",
            vpc_id=self.vpc.id,
            description="wikibot Lambda functions: egress only",
            tags={"Name": f"{prefix}-lambda"},
            opts=child,
        )
        self.efs_security_group = aws.ec2.SecurityGroup(
            f"{name}-efs-sg",
            vpc_id=self.vpc.id,
            description="wikibot EFS: NFS from the Lambda functions only",
            tags={"Name": f"{prefix}-efs"},
            opts=child,
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-efs-nfs-from-lambda",
            security_group_id=self.efs_security_group.id,
            referenced_security_group_id=self.lambda_security_group.id,
            ip_protocol="tcp",
            from_port=NFS_PORT,
            to_port=NFS_PORT,
            description="NFS from the wikibot Lambda functions",
            opts=child,
        )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-lambda-nfs-to-efs",
            security_group_id=self.lambda_security_group.id,
            referenced_security_group_id=self.efs_security_group.id,
            ip_protocol="tcp",
            from_port=NFS_PORT,
            to_port=NFS_PORT,
            description="NFS to the wiki file system",
            opts=child,
        )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-lambda-https-out",
            security_group_id=self.lambda_security_group.id,
            cidr_ipv4="0.0.0.0/0",
            ip_protocol="tcp",
            from_port=HTTPS_PORT,
            to_port=HTTPS_PORT,
            description="HTTPS: AuthKit JWKS, AWS APIs",
            opts=child,
        )

        self.register_outputs(
            {
                "vpc_id": self.vpc.id,
                "public_subnet_id": self.public_subnet.id,
                "private_subnet_id": self.private_subnet.id,
                "private_route_table_id": self.private_route_table.id,
                "availability_zone_id": self.zone.zone_id,
            }
        )
