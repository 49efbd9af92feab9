"""Simpul: an HL7v2/FHIR integration engine."""
__version__ = "0.1.0"
