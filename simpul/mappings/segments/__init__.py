"""Segment maps: one module per FHIR resource family, each function maps one segment (group)."""
