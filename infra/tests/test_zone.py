"""The availability zone: by zone id, chosen or validated against what the account offers."""

import pytest

from conftest import ZONE_NAMES

SUBNET = "aws:ec2/subnet:Subnet"
ZONES = "aws:index/getAvailabilityZones:getAvailabilityZones"
OFFERINGS = "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings"


def zone_of(stack):
    ids = {subnet.inputs["availabilityZoneId"] for subnet in stack.of_type(SUBNET)}
    assert len(ids) == 1, "both subnets in one zone"
    return ids.pop()


def test_unset_the_first_zone_offering_the_nat_instance_type_is_chosen_and_exported(dev):
    # use1-az1 comes first but does not offer t4g.nano in the mock account.
    assert zone_of(dev) == "use1-az2"
    assert dev.one("aws:efs/fileSystem:FileSystem").inputs["availabilityZoneName"] == ZONE_NAMES["use1-az2"]
    assert dev.resolve(dev.program["network"].zone.zone_id) == "use1-az2"


def test_the_lookups_ask_for_available_zones_without_opt_in_and_the_nat_type_by_zone_id(dev):
    calls = dict(dev.calls)
    assert calls[ZONES]["state"] == "available"
    assert calls[ZONES]["filters"] == [{"name": "opt-in-status", "values": ["opt-in-not-required"]}]
    assert calls[OFFERINGS]["locationType"] == "availability-zone-id"
    assert calls[OFFERINGS]["filters"] == [{"name": "instance-type", "values": ["t4g.nano"]}]


def test_the_old_zone_many_services_skip_is_never_chosen_automatically(run_stack):
    stack = run_stack(zones=["use1-az3", "use1-az4"], nat_zones=["use1-az3", "use1-az4"])
    assert zone_of(stack) == "use1-az4"


def test_a_set_zone_id_is_used_and_its_name_resolved_for_the_file_system(run_stack):
    stack = run_stack({"wikibot:availability_zone_id": "use1-az5"})
    assert zone_of(stack) == "use1-az5"
    assert stack.one("aws:efs/fileSystem:FileSystem").inputs["availabilityZoneName"] == "us-east-1f"


def test_a_set_zone_id_outside_the_region_is_refused_naming_the_setting(run_stack):
    with pytest.raises(Exception, match=r"availability_zone_id 'usw2-az1' is not an available zone of us-east-1"):
        run_stack({"wikibot:availability_zone_id": "usw2-az1"})


def test_a_set_zone_without_the_nat_instance_type_is_refused_unless_there_is_no_nat_instance(run_stack):
    with pytest.raises(Exception, match=r"availability_zone_id 'use1-az1' does not offer t4g.nano"):
        run_stack({"wikibot:availability_zone_id": "use1-az1"})
    stack = run_stack({"wikibot:availability_zone_id": "use1-az1", "wikibot:egress": "nat-gateway"})
    assert zone_of(stack) == "use1-az1"
    assert OFFERINGS not in dict(stack.calls), "no NAT instance, no need to ask"


def test_no_fitting_zone_is_a_clear_error(run_stack):
    with pytest.raises(Exception, match=r"no zone of us-east-1 fits the stack.*set availability_zone_id"):
        run_stack(nat_zones=[])


@pytest.mark.parametrize("value", ["us-east-1a", "use1-bos1-az1", "az1", "USE1-AZ1"])
def test_zone_names_and_local_zones_are_not_zone_ids(run_stack, value):
    with pytest.raises(Exception, match="availability_zone_id must be a zone id"):
        run_stack({"wikibot:availability_zone_id": value})


def test_the_old_zone_name_setting_is_refused_with_the_way_forward(run_stack):
    with pytest.raises(Exception, match="availability_zone .a zone name. is no longer read.*availability_zone_id"):
        run_stack({"wikibot:availability_zone": "us-east-1a"})
