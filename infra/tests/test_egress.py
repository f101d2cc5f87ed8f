"""The private subnet's way out, by the `egress` setting."""

import pytest

from components.egress import nat_user_data
from conftest import MOCK_AMI

ROUTE = "aws:ec2/route:Route"


def default_routes_of(stack, table):
    return [r for r in stack.of_type(ROUTE) if r.inputs["routeTableId"] == table.id and r.inputs["destinationCidrBlock"] == "0.0.0.0/0"]


def test_the_default_is_a_nat_instance_in_the_public_subnet(dev):
    instance = dev.one("aws:ec2/instance:Instance")
    public = dev.one("aws:ec2/subnet:Subnet", "public")
    assert instance.inputs["subnetId"] == public.id
    assert instance.inputs["sourceDestCheck"] is False, "a NAT must forward others' packets"
    assert instance.inputs["instanceType"] == "t4g.nano"
    assert instance.inputs["metadataOptions"]["httpTokens"] == "required"
    assert instance.inputs["userData"] == nat_user_data("10.20.1.0/24")
    assert "10.20.1.0/24" in instance.inputs["userData"] and "@PRIVATE_CIDR@" not in instance.inputs["userData"]
    routes = default_routes_of(dev, dev.one("aws:ec2/routeTable:RouteTable", "private"))
    assert len(routes) == 1
    assert routes[0].inputs["networkInterfaceId"] == f"eni-{instance.name}"
    nat_ingress = [r for r in dev.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule") if "nat" in r.name]
    assert [r.inputs["cidrIpv4"] for r in nat_ingress] == ["10.20.1.0/24"], "only the private subnet may use it"
    assert not dev.of_type("aws:ec2/natGateway:NatGateway")


def test_a_nat_gateway_when_chosen(run_stack):
    stack = run_stack({"wikibot:egress": "nat-gateway"})
    gateway = stack.one("aws:ec2/natGateway:NatGateway")
    assert gateway.inputs["subnetId"] == stack.one("aws:ec2/subnet:Subnet", "public").id
    assert gateway.inputs["allocationId"] == stack.one("aws:ec2/eip:Eip").id
    routes = default_routes_of(stack, stack.one("aws:ec2/routeTable:RouteTable", "private"))
    assert [r.inputs["natGatewayId"] for r in routes] == [gateway.id]
    assert not stack.of_type("aws:ec2/instance:Instance")


def test_no_way_out_when_egress_is_none(run_stack):
    stack = run_stack({"wikibot:egress": "none"})
    assert not default_routes_of(stack, stack.one("aws:ec2/routeTable:RouteTable", "private"))
    assert not stack.of_type("aws:ec2/instance:Instance") and not stack.of_type("aws:ec2/natGateway:NatGateway")


def test_an_unknown_egress_is_refused(run_stack):
    with pytest.raises(Exception, match="egress must be one of"):
        run_stack({"wikibot:egress": "vpn"})


def test_the_nat_instance_is_replaced_when_its_boot_script_changes(dev):
    assert dev.one("aws:ec2/instance:Instance").inputs["userDataReplaceOnChange"] is True


def test_unpinned_the_nat_instance_keeps_the_image_it_was_created_with(dev):
    instance = dev.one("aws:ec2/instance:Instance")
    assert instance.inputs["ami"] == MOCK_AMI, "the newest image at creation"
    lookup = dict(dev.calls)["aws:ec2/getAmi:getAmi"]
    assert lookup["owners"] == ["amazon"] and lookup["mostRecent"] is True
    assert dev.options[instance.name].ignore_changes == ["ami"], "a newer release must not replace it"
    assert dev.resolve(dev.program["egress"].nat_ami) == MOCK_AMI, "exported for infra/deploy to pin"


def test_a_pinned_image_is_used_as_is_and_a_new_pin_replaces_the_instance(run_stack):
    stack = run_stack({"wikibot:nat_ami": "ami-0fedcba9876543210"})
    instance = stack.one("aws:ec2/instance:Instance")
    assert instance.inputs["ami"] == "ami-0fedcba9876543210"
    assert "aws:ec2/getAmi:getAmi" not in dict(stack.calls)
    assert not stack.options[instance.name].ignore_changes


@pytest.mark.parametrize("value", ["ami-123", "0123456789abcdef0", "ami-0123456789ABCDEF0"])
def test_a_malformed_image_id_is_refused(run_stack, value):
    with pytest.raises(Exception, match="nat_ami must be an image id"):
        run_stack({"wikibot:nat_ami": value})
