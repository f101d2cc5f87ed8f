"""The front door on the stack's own domain (components/domain.py): mapped at the root, with
a given certificate or one the stack requests and validates in the Route 53 zone, the alias
record when there is a zone, and settings that refuse what AWS would refuse later."""

import pytest

from conftest import API_DOMAIN_TARGET, API_DOMAIN_ZONE

DOMAIN = "aws:apigatewayv2/domainName:DomainName"
MAPPING = "aws:apigatewayv2/apiMapping:ApiMapping"
RECORD = "aws:route53/record:Record"
CERTIFICATE = "aws:acm/certificate:Certificate"
VALIDATION = "aws:acm/certificateValidation:CertificateValidation"
CERT_ARN = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789"
ZONE = "Z0123456789ABCDEFGHIJ"


def domain_config(**settings) -> dict:
    return {"wikibot:domain_name": "wiki.example.com", **{f"wikibot:{k}": v for k, v in settings.items()}}


def assert_mapped_at_the_root(stack, certificate_arn):
    api = stack.one("aws:apigatewayv2/api:Api")
    stage = stack.one("aws:apigatewayv2/stage:Stage")
    domain = stack.one(DOMAIN)
    assert domain.inputs["domainName"] == "wiki.example.com"
    configuration = domain.inputs["domainNameConfiguration"]
    assert configuration["endpointType"] == "REGIONAL"
    assert configuration["securityPolicy"] == "TLS_1_2"
    assert configuration["certificateArn"] == certificate_arn
    mapping = stack.one(MAPPING)
    assert mapping.inputs["apiId"] == api.id
    assert mapping.inputs["domainName"] == domain.id
    assert mapping.inputs["stage"] == stage.id
    assert "apiMappingKey" not in mapping.inputs, "no base path: /mcp and /.well-known/… at the root"
    assert api.inputs["disableExecuteApiEndpoint"] is True, "one URL: the domain's"
    url = stack.resolve(stack.program["api"].mcp_url)
    assert url == "https://wiki.example.com/mcp"
    variables = stack.one("aws:lambda/function:Function", "mcp-server").plain("environment")["variables"]
    assert variables["MCP_RESOURCE_URL"] == url, "tokens are checked against the domain's URL"
    assert stack.resolve(stack.program["domain"].target_domain_name) == API_DOMAIN_TARGET


def test_a_given_certificate_without_a_zone_maps_the_domain_and_leaves_dns_to_the_user(run_stack):
    stack = run_stack(domain_config(certificate_arn=CERT_ARN))
    assert_mapped_at_the_root(stack, CERT_ARN)
    assert not stack.of_type(CERTIFICATE) and not stack.of_type(VALIDATION), "the given one is used"
    assert not stack.of_type(RECORD), "no zone: the user points a CNAME at domain_target"
    assert stack.program["domain"].record is None


def test_a_given_certificate_with_a_zone_gets_an_alias_record(run_stack):
    stack = run_stack(domain_config(certificate_arn=CERT_ARN, route53_zone_id=ZONE))
    assert_mapped_at_the_root(stack, CERT_ARN)
    assert not stack.of_type(CERTIFICATE)
    (record,) = stack.of_type(RECORD)
    assert record.inputs["zoneId"] == ZONE
    assert record.inputs["name"] == "wiki.example.com"
    assert record.inputs["type"] == "A"
    (alias,) = record.inputs["aliases"]
    assert alias == {"name": API_DOMAIN_TARGET, "zoneId": API_DOMAIN_ZONE, "evaluateTargetHealth": False}


def test_a_zone_without_a_certificate_gets_one_requested_validated_and_used(run_stack):
    stack = run_stack(domain_config(route53_zone_id=ZONE))
    certificate = stack.one(CERTIFICATE)
    assert certificate.inputs["domainName"] == "wiki.example.com"
    assert certificate.inputs["validationMethod"] == "DNS"
    validation_record = stack.one(RECORD, "certificate-validation")
    assert validation_record.inputs["zoneId"] == ZONE
    assert validation_record.inputs["name"] == "_0a1b2c.wiki.example.com."
    assert validation_record.inputs["type"] == "CNAME"
    assert validation_record.inputs["records"] == ["_3d4e5f.acm-validations.aws."]
    validation = stack.one(VALIDATION)
    assert validation.inputs["certificateArn"] == f"arn:aws:mock:us-east-1:123456789012:{certificate.name}"
    assert validation.inputs["validationRecordFqdns"] == ["_0a1b2c.wiki.example.com."]
    # The domain takes the certificate from the validation, i.e. only once ACM has issued it.
    assert_mapped_at_the_root(stack, validation.inputs["certificateArn"])
    alias = stack.one(RECORD, "mcp-domain-record")
    assert alias.inputs["type"] == "A" and alias.inputs["zoneId"] == ZONE


def test_without_a_domain_there_is_no_domain_machinery(dev):
    for typ in (DOMAIN, MAPPING, RECORD, CERTIFICATE, VALIDATION):
        assert not dev.of_type(typ), typ
    assert dev.program["domain"] is None


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (domain_config(), "needs a TLS certificate: set certificate_arn"),
        ({"wikibot:certificate_arn": CERT_ARN}, "certificate_arn is for the stack's own domain, but domain_name is not set"),
        ({"wikibot:route53_zone_id": ZONE}, "route53_zone_id is for the stack's own domain"),
        (domain_config(certificate_arn=CERT_ARN.replace("us-east-1", "eu-west-1")), "needs a certificate in the stack's region, us-east-1"),
        (domain_config(certificate_arn="arn:aws:iam::123456789012:server-certificate/x"), "certificate_arn must be an ACM certificate ARN"),
        (domain_config(route53_zone_id="/hostedzone/" + ZONE), "route53_zone_id must be a hosted zone id"),
        ({"wikibot:domain_name": "https://wiki.example.com", "wikibot:route53_zone_id": ZONE}, "domain_name must be a lower-case DNS name"),
        ({"wikibot:domain_name": "wiki.example.com/mcp", "wikibot:route53_zone_id": ZONE}, "domain_name must be"),
        ({"wikibot:domain_name": "Wiki.Example.com", "wikibot:route53_zone_id": ZONE}, "domain_name must be"),
        ({"wikibot:domain_name": "localhost", "wikibot:route53_zone_id": ZONE}, "domain_name must be"),
        ({"wikibot:domain_name": "*.example.com", "wikibot:route53_zone_id": ZONE}, "domain_name must be"),
        ({"wikibot:domain_name": "-wiki.example.com", "wikibot:route53_zone_id": ZONE}, "domain_name must be"),
    ],
)
def test_domain_settings_aws_would_refuse_are_refused_naming_the_setting(run_stack, config, message):
    with pytest.raises(Exception, match=message):
        run_stack(config)


def test_an_empty_domain_setting_is_off(run_stack):
    stack = run_stack({"wikibot:domain_name": "", "wikibot:certificate_arn": ""})
    assert not stack.of_type(DOMAIN)
