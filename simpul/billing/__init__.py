"""Encounter-to-cash: accounts per encounter, charges, tariffs, invoices and reconciliation (docs/billing.md)."""
