"""Clients for Indonesia's national health services: BPJS VClaim, the INA-CBG E-Klaim web service,
and SATUSEHAT (the Kemenkes FHIR platform), with the cryptography each one needs.

Not a connector itself (the registry skips this package): the connectors `bpjs_vclaim`, `eklaim`
and `satusehat` are built on these clients. Protocol facts and test vectors:
docs/integrations/bpjs-satusehat.md.
"""
