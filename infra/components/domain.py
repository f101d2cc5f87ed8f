"""The front door on the stack's own domain (settings `domain_name`, `certificate_arn`,
`route53_zone_id`; docs/decisions/0005-front-door.md): a regional API Gateway domain name
with TLS 1.2, the HTTP API's `$default` stage mapped at its root (no base path, so
`https://<domain>/mcp` and `https://<domain>/.well-known/…` reach the function as they are).

The certificate is `certificate_arn` when given (an issued ACM certificate in the stack's
region). Without it the stack requests one for the domain and validates it by DNS in the
Route 53 zone `route53_zone_id`. With a zone the stack also points the domain at the API
(an alias A record); without one, the `domain_target` output is what a CNAME at your DNS
provider must point at.

This component must not create or change the hosted zone itself, nor any record but the
domain's own and its certificate's validation record.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from .api import McpApi
from .settings import Settings


class CustomDomain(pulumi.ComponentResource):
    def __init__(self, name: str, settings: Settings, api: McpApi, opts: pulumi.ResourceOptions | None = None):
        super().__init__("wikibot:api:CustomDomain", name, None, opts)
        if settings.domain_name is None or api.stage is None:
            raise ValueError("CustomDomain needs a domain_name and the API's stage (route_to first)")
        domain = settings.domain_name
        child = pulumi.ResourceOptions(parent=self)

        if settings.certificate_arn is not None:
            certificate_arn: pulumi.Input[str] = settings.certificate_arn
        else:
            certificate_arn = self._validated_certificate(name, domain, settings.route53_zone_id, child)

        self.domain = aws.apigatewayv2.DomainName(
            f"{name}-domain",
            domain_name=domain,
            domain_name_configuration=aws.apigatewayv2.DomainNameDomainNameConfigurationArgs(
                certificate_arn=certificate_arn,
                endpoint_type="REGIONAL",
                security_policy="TLS_1_2",
            ),
            opts=child,
        )
        # No api_mapping_key: the API answers at the domain's root.
        self.mapping = aws.apigatewayv2.ApiMapping(
            f"{name}-mapping",
            api_id=api.http_api.id,
            domain_name=self.domain.id,
            stage=api.stage.id,
            opts=child,
        )
        configuration = self.domain.domain_name_configuration
        self.target_domain_name = configuration.apply(lambda c: c.target_domain_name)
        self.record: aws.route53.Record | None = None
        if settings.route53_zone_id is not None:
            self.record = aws.route53.Record(
                f"{name}-record",
                zone_id=settings.route53_zone_id,
                name=domain,
                type="A",
                aliases=[
                    aws.route53.RecordAliasArgs(
                        name=self.target_domain_name,
                        zone_id=configuration.apply(lambda c: c.hosted_zone_id),
                        evaluate_target_health=False,
                    )
                ],
                opts=child,
            )
        self.register_outputs({"target_domain_name": self.target_domain_name})

    def _validated_certificate(
        self, name: str, domain: str, zone_id: str | None, child: pulumi.ResourceOptions
    ) -> pulumi.Output[str]:
        """An ACM certificate for `domain`, validated by a DNS record in `zone_id`; its ARN once
        ACM has issued it (the domain name cannot use it before)."""
        if zone_id is None:
            raise ValueError("a certificate can only be validated in a Route 53 zone")
        certificate = aws.acm.Certificate(
            f"{name}-certificate",
            domain_name=domain,
            validation_method="DNS",
            opts=child,
        )
        option = certificate.domain_validation_options.apply(lambda options: options[0])
        validation_record = aws.route53.Record(
            f"{name}-certificate-validation",
            zone_id=zone_id,
            name=option.apply(lambda o: o.resource_record_name),
            type=option.apply(lambda o: o.resource_record_type),
            records=[option.apply(lambda o: o.resource_record_value)],
            ttl=300,
            # ACM gives the same record for a reissued certificate of the same name.
            allow_overwrite=True,
            opts=child,
        )
        self.certificate = certificate
        self.validation = aws.acm.CertificateValidation(
            f"{name}-certificate-issued",
            certificate_arn=certificate.arn,
            validation_record_fqdns=[validation_record.fqdn],
            opts=child,
        )
        return self.validation.certificate_arn
