"""P0-1: the VPC, its subnets and routes, the gateway endpoints, the security groups."""

import ipaddress

SG = "aws:ec2/securityGroup:SecurityGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
ROUTE = "aws:ec2/route:Route"


def test_vpc_and_subnets_use_the_configured_cidrs_in_one_zone(run_stack):
    stack = run_stack({"wikibot:vpc_cidr": "10.50.0.0/16", "wikibot:public_subnet_cidr": "10.50.0.0/24",
                       "wikibot:private_subnet_cidr": "10.50.8.0/24"})
    vpc = stack.one("aws:ec2/vpc:Vpc")
    assert vpc.inputs["cidrBlock"] == "10.50.0.0/16"
    assert vpc.inputs["enableDnsHostnames"] is True
    public = stack.one("aws:ec2/subnet:Subnet", "public")
    private = stack.one("aws:ec2/subnet:Subnet", "private")
    assert public.inputs["cidrBlock"] == "10.50.0.0/24"
    assert private.inputs["cidrBlock"] == "10.50.8.0/24"
    assert len(stack.of_type("aws:ec2/subnet:Subnet")) == 2
    assert public.inputs["availabilityZoneId"] == private.inputs["availabilityZoneId"] == "use1-az2"
    assert "availabilityZone" not in public.inputs and "availabilityZone" not in private.inputs, "never by name"
    assert public.inputs["mapPublicIpOnLaunch"] is False and private.inputs["mapPublicIpOnLaunch"] is False
    for subnet in (public, private):
        assert ipaddress.ip_network(subnet.inputs["cidrBlock"]).subnet_of(ipaddress.ip_network("10.50.0.0/16"))


def test_only_the_public_subnet_routes_to_the_internet_gateway(dev):
    igw = dev.one("aws:ec2/internetGateway:InternetGateway")
    public_rt = dev.one("aws:ec2/routeTable:RouteTable", "public")
    private_rt = dev.one("aws:ec2/routeTable:RouteTable", "private")
    to_igw = [r for r in dev.of_type(ROUTE) if r.inputs.get("gatewayId") == igw.id]
    assert len(to_igw) == 1
    assert to_igw[0].inputs["routeTableId"] == public_rt.id
    assert to_igw[0].inputs["destinationCidrBlock"] == "0.0.0.0/0"
    associations = {a.inputs["subnetId"]: a.inputs["routeTableId"]
                    for a in dev.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")}
    public = dev.one("aws:ec2/subnet:Subnet", "public")
    private = dev.one("aws:ec2/subnet:Subnet", "private")
    assert associations == {public.id: public_rt.id, private.id: private_rt.id}


def test_gateway_endpoints_for_s3_and_dynamodb_attach_to_the_private_route_table(dev):
    private_rt = dev.one("aws:ec2/routeTable:RouteTable", "private")
    endpoints = dev.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    services = sorted(e.inputs["serviceName"] for e in endpoints)
    assert services == ["com.amazonaws.us-east-1.dynamodb", "com.amazonaws.us-east-1.s3"]
    for endpoint in endpoints:
        assert endpoint.inputs["vpcEndpointType"] == "Gateway"
        assert endpoint.inputs["routeTableIds"] == [private_rt.id]


def test_efs_accepts_only_nfs_from_the_lambda_group(dev):
    lambda_sg = dev.one(SG, "lambda")
    efs_sg = dev.one(SG, "efs")
    ingress = dev.of_type(INGRESS)
    efs_ingress = [r for r in ingress if r.inputs["securityGroupId"] == efs_sg.id]
    assert len(efs_ingress) == 1
    rule = efs_ingress[0].inputs
    assert (rule["ipProtocol"], rule["fromPort"], rule["toPort"]) == ("tcp", 2049, 2049)
    assert rule["referencedSecurityGroupId"] == lambda_sg.id
    assert "cidrIpv4" not in rule and "cidrIpv6" not in rule
    assert not [r for r in ingress if r.inputs["securityGroupId"] == lambda_sg.id], "nothing may reach the functions"
    assert not [r for r in dev.of_type(EGRESS) if r.inputs["securityGroupId"] == efs_sg.id]
    for group in dev.of_type(SG):
        assert "ingress" not in group.inputs and "egress" not in group.inputs, "rules are separate resources"


def test_lambda_egress_is_https_out_and_nfs_to_efs(dev):
    lambda_sg = dev.one(SG, "lambda")
    efs_sg = dev.one(SG, "efs")
    rules = sorted(
        (r.inputs["ipProtocol"], r.inputs["fromPort"], r.inputs.get("cidrIpv4") or r.inputs.get("referencedSecurityGroupId"))
        for r in dev.of_type(EGRESS)
        if r.inputs["securityGroupId"] == lambda_sg.id
    )
    assert rules == [("tcp", 443, "0.0.0.0/0"), ("tcp", 2049, efs_sg.id)]
