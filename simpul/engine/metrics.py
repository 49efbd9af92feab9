"""Prometheus metrics, one registry per engine (so tests can run several engines in one process).

Two registries because ingest may run in its own process (see engine/ingest_process.py):
`IngestMetrics` belong to the listeners and the ACK path, labelled by source (the listener, e.g.
"mllp:127.0.0.1:2575") because a message is ACKed before routing decides its channels;
`Metrics` cover everything after routing, labelled by channel and destination. /metrics
serves both.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

# The *_created series double the output and no dashboard reads them.
disable_created_metrics()


class IngestMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter("simpul_messages_received", "Frames received", ["source"], registry=r)
        self.acked = Counter("simpul_messages_acked", "Messages stored and positively ACKed", ["source"], registry=r)
        self.rejected = Counter("simpul_messages_rejected", "Messages answered AE/AR", ["source", "reason"], registry=r)
        self.duplicates = Counter("simpul_messages_duplicate", "Resent messages answered with their stored ACK",
                                  ["source"], registry=r)
        self.commit_failures = Counter("simpul_commit_failures", "Group commits that failed", registry=r)
        self.ack_latency = Histogram(
            "simpul_ack_latency_seconds", "Frame received to ACK ready", ["source"], registry=r,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.connections = Gauge("simpul_mllp_connections", "Open MLLP connections", ["source"], registry=r)
        self.junk_bytes = Counter("simpul_mllp_junk_bytes", "Bytes skipped outside MLLP frames", ["source"],
                                  registry=r)
        self.listener_events = Counter("simpul_mllp_events", "Refused connections, timeouts, oversize frames",
                                       ["source", "event"], registry=r)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.routed = Counter("simpul_messages_routed", "Messages a channel took", ["channel"], registry=r)
        self.unrouted = Counter("simpul_messages_unrouted", "Messages no channel took", ["source"], registry=r)
        self.mapping_failed = Counter("simpul_mapping_failed", "Messages the mapping could not map",
                                      ["channel"], registry=r)
        self.unmapped_fields = Counter("simpul_mapping_unmapped_fields", "Valued fields (SEG-n) or whole "
                                       "segments (SEG) of mapped messages that no map used", ["channel", "field"],
                                       registry=r)
        self.mapping_events = Counter("simpul_mapping_events", "Mapped messages with a notable event: "
                                      "unmatched_patient, time_without_zone, appointment_without_time",
                                      ["channel", "event"], registry=r)
        self.queued = Counter("simpul_deliveries_queued", "Deliveries queued", ["channel", "destination"], registry=r)
        self.delivered = Counter("simpul_deliveries_delivered", "Deliveries done", ["channel", "destination"],
                                 registry=r)
        self.retried = Counter("simpul_deliveries_retried", "Failed attempts that will be retried",
                               ["channel", "destination"], registry=r)
        self.dead_lettered = Counter("simpul_deliveries_dead_lettered", "Deliveries moved to dead letters",
                                     ["channel", "destination"], registry=r)
        self.delivery_latency = Histogram(
            "simpul_delivery_seconds", "One send to a destination", ["channel", "destination"], registry=r)
        # Delivery control and "why is it queued?" (dead_letters/): the gauges are refreshed from
        # the store every few seconds, so they count rows, not events since start.
        self.queue_depth = Gauge("simpul_queue_depth", "Deliveries not yet delivered, by status "
                                 "(pending, in_flight, held)", ["channel", "destination", "status"], registry=r)
        self.queue_oldest_age = Gauge("simpul_queue_oldest_age_seconds", "Age of the oldest undelivered "
                                      "delivery (0 when the queue is empty)", ["channel", "destination"], registry=r)
        self.dead_letters_open = Gauge("simpul_dead_letters_open", "Dead letters waiting for a decision",
                                       ["channel", "destination"], registry=r)
        self.destination_paused = Gauge("simpul_destination_paused", "1 while paused by staff",
                                        ["channel", "destination"], registry=r)
        self.destination_in_downtime = Gauge("simpul_destination_in_downtime", "1 inside a planned downtime window",
                                             ["channel", "destination"], registry=r)
        # Several engine processes on one store (engine/nodes.py), refreshed every heartbeat.
        self.config_drift = Gauge("simpul_config_drift", "1 while live engine processes on this store run "
                                  "different channel sets", registry=r)
        self.channel_sets = Gauge("simpul_channel_sets", "Distinct channel sets among live engine processes",
                                  registry=r)
        self.unroutable_received = Gauge("simpul_messages_unroutable_received", "Messages waiting in `received` "
                                         "whose source no live engine process listens on", registry=r)
        self.orders_overdue = Counter("simpul_orders_overdue", "Orders that passed their SLA without a final "
                                      "result (counted once per order)", ["kind", "priority"], registry=r)
        self.circuit_state = Gauge("simpul_destination_circuit_state", "Circuit breaker: 0 closed, 1 open, "
                                   "2 half-open", ["channel", "destination"], registry=r)

    def count_mapping(self, channel: str, counts: dict[str, dict[str, int]]) -> None:
        """Add one mapped message's report (mapping_pool Result counts) to the per-channel counters."""
        for name, n in counts.get("not_mapped", {}).items():
            self.unmapped_fields.labels(channel, name).inc(n)
        for event, n in counts.get("events", {}).items():
            self.mapping_events.labels(channel, event).inc(n)

    def set_destination_state(self, channel: str, destination: str, *, paused: bool, in_downtime: bool,
                              circuit: str) -> None:
        """Called by the destination worker on every loop."""
        self.destination_paused.labels(channel, destination).set(int(paused))
        self.destination_in_downtime.labels(channel, destination).set(int(in_downtime))
        self.circuit_state.labels(channel, destination).set({"closed": 0, "open": 1, "half_open": 2}.get(circuit, 0))
