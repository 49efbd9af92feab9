"""Tests of the ingest benchmark (bench/)."""
