"""Prometheus metrics for one app instance (its own registry, so several apps can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
RESPONSE_BUCKETS = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 259200)  # 1 minute to 3 days


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("triage_requests", "HTTP requests", ["endpoint", "method", "status"], registry=r)
        self.latency = Histogram("triage_request_seconds", "Request latency", ["endpoint"], buckets=LATENCY_BUCKETS,
                                 registry=r)
        self.batch_posts = Histogram("triage_batch_posts", "Posts per forward pass", buckets=BATCH_BUCKETS,
                                     registry=r)
        self.queue_posts = Gauge("triage_queue_posts", "Posts waiting for a forward pass", registry=r)
        self.cache_hits = Counter("triage_cache_hits", "Model outputs served from the cache", registry=r)
        self.cache_misses = Counter("triage_cache_misses", "Model outputs computed", registry=r)
        self.cache_ratio = Gauge("triage_cache_hit_ratio", "Cache hits / lookups since start", registry=r)
        self.cache_ratio.set_function(self._hit_ratio)
        self.model = Info("triage_model", "The model being served", registry=r)
        self.predictions = Counter("triage_predicted_labels", "Predicted labels", ["task", "label"], registry=r)
        self.overloaded = Counter("triage_overloaded", "Requests refused with 503 (queue full)", registry=r)
        self.inbox_ingested = Counter("triage_inbox_ingested_posts", "Posts sent to the inbox", ["outcome"],
                                      registry=r)
        self.inbox_first_response = Histogram(
            "triage_inbox_first_response_seconds", "From the SLA clock start to the item resolved as responded",
            ["route", "tier"], buckets=RESPONSE_BUCKETS, registry=r)

        self._hits = self._lookups = 0

    def count_cache(self, hits: int, misses: int) -> None:
        self.cache_hits.inc(hits)
        self.cache_misses.inc(misses)
        self._hits += hits
        self._lookups += hits + misses

    def _hit_ratio(self) -> float:
        return self._hits / self._lookups if self._lookups else 0.0
