"""Fake peers for tests: fault-injecting stand-ins for the systems Simpul talks to."""
