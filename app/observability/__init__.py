"""Observability: Prometheus metrics read from the gateway state at scrape time, and HTTP measurements."""
