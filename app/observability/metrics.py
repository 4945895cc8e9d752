"""The /metrics collector: reads the gateway's snapshots at scrape time (bounded labels, never ids)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from app import __version__
from app.kernels.events import KernelEventKind
from app.kernels.timings import TimingSnapshot
from app.state import GatewayState

# event counters: metric name, help, event kinds counted, extra label for restarts
_EVENT_COUNTERS = (
    (
        "fastkg_kernel_starts",
        "Kernels started (REST, sessions, warm pool hand-outs)",
        KernelEventKind.STARTED,
    ),
    ("fastkg_kernel_start_failures", "Kernel starts that failed (also seeds)", KernelEventKind.START_FAILED),
    ("fastkg_kernel_culls", "Kernels shut down by the idle culler", KernelEventKind.CULLED),
    ("fastkg_kernel_shutdowns", "Kernels shut down on request", KernelEventKind.SHUTDOWN),
    ("fastkg_kernel_deaths", "Kernels that died and could not be restarted", KernelEventKind.DIED),
    ("fastkg_kernel_interrupts", "Kernel interrupts on request", KernelEventKind.INTERRUPTED),
)


def histogram(name: str, doc: str, labels: list[str]) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, doc, labels=labels)


def add_timings(family: HistogramMetricFamily, labels: list[str], timings: TimingSnapshot) -> None:
    buckets = [("+Inf" if bound == float("inf") else repr(bound), count) for bound, count in timings.buckets]
    family.add_metric(labels, buckets, timings.total)


class GatewayCollector(Collector):
    """Kernels, pools, websockets and kernel events, from the state the lifespan built."""

    def __init__(self, state: Callable[[], GatewayState | None]) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("fastkg_info", "Gateway version", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        gateway = self.state()
        ready = GaugeMetricFamily("fastkg_ready", "1 when /readyz answers 200")
        ready.add_metric([], 1 if gateway is not None and gateway.readiness() is None else 0)
        yield ready
        if gateway is None:
            return
        yield from self._kernels(gateway)
        yield from self._events(gateway)
        yield from self._websockets(gateway)
        yield from self._pools(gateway)

    def _kernels(self, gateway: GatewayState) -> Iterable[Metric]:
        kernels = GaugeMetricFamily(
            "fastkg_kernels",
            "Listed kernels by kernelspec and execution state",
            labels=["kernelspec", "state"],
        )
        for (name, state), count in sorted(
            Counter((k.name, k.execution_state) for k in gateway.kernels.running()).items()
        ):
            kernels.add_metric([name, state], count)
        yield kernels
        stats = gateway.kernels.stats()
        for name, doc, value in (
            ("fastkg_kernels_starting", "Kernel starts in progress", stats.starting),
            ("fastkg_warm_kernels", "Started kernels waiting in the warm pool", stats.warm),
            ("fastkg_warm_kernels_target", "Warm pool size (FASTKG_WARM_POOL)", stats.warm_target),
            ("fastkg_pool_private_kernels", "Kernels held by notebook-http pools", stats.private),
        ):
            yield GaugeMetricFamily(name, doc, value=value)
        if stats.max_kernels is not None:
            yield GaugeMetricFamily("fastkg_kernels_max", "KG_MAX_KERNELS", value=stats.max_kernels)

    def _events(self, gateway: GatewayState) -> Iterable[Metric]:
        counts = gateway.kernels.events.counts
        specs = sorted({spec for _, spec in counts})
        for name, doc, kind in _EVENT_COUNTERS:
            family = CounterMetricFamily(name, doc, labels=["kernelspec"])
            for spec in specs:
                family.add_metric([spec], counts.get((kind, spec), 0))
            yield family
        restarts = CounterMetricFamily(
            "fastkg_kernel_restarts", "Kernel restarts", labels=["kernelspec", "reason"]
        )
        for spec in specs:
            restarts.add_metric([spec, "requested"], counts.get((KernelEventKind.RESTARTED, spec), 0))
            restarts.add_metric([spec, "automatic"], counts.get((KernelEventKind.AUTO_RESTARTED, spec), 0))
        yield restarts

    def _websockets(self, gateway: GatewayState) -> Iterable[Metric]:
        traffic = gateway.traffic
        open_now = sum(k.connections for k in gateway.kernels.running())
        yield GaugeMetricFamily("fastkg_websocket_connections_open", "Open kernel websockets", value=open_now)
        yield CounterMetricFamily(
            "fastkg_websocket_connections", "Kernel websockets accepted", value=traffic.connections
        )
        messages = CounterMetricFamily(
            "fastkg_websocket_messages", "Kernel websocket frames relayed", labels=["direction"]
        )
        messages.add_metric(["to_kernel"], traffic.to_kernel)
        messages.add_metric(["to_client"], traffic.to_client)
        yield messages

    def _pools(self, gateway: GatewayState) -> Iterable[Metric]:
        labels = ["service", "version"]
        size = GaugeMetricFamily("fastkg_pool_size", "Notebook pool target size", labels=labels)
        kernels = GaugeMetricFamily("fastkg_pool_kernels", "Notebook pool kernels", labels=[*labels, "state"])
        waiting = GaugeMetricFamily("fastkg_pool_waiting", "Requests queued for a pool kernel", labels=labels)
        waits = histogram("fastkg_pool_wait_seconds", "Time requests waited for a pool kernel", labels)
        for notebook in gateway.notebooks():
            key = [notebook.name, ""]
            stats = notebook.pool.stats()
            size.add_metric(key, stats.min)
            kernels.add_metric([*key, "idle"], stats.idle)
            kernels.add_metric([*key, "busy"], stats.busy)
            waiting.add_metric(key, stats.waiting)
            add_timings(waits, key, stats.waits)
        yield from (size, kernels, waiting, waits)


@dataclass(frozen=True)
class Registries:
    """This app's own registries (create_app may run twice in a process: no global registry).

    `gateway` reads live gateway objects, so it is collected on the event loop; `process` reads /proc
    files, so it is collected in a worker thread."""

    gateway: CollectorRegistry
    process: CollectorRegistry


def build_registries(state: Callable[[], GatewayState | None]) -> Registries:
    gateway = CollectorRegistry(auto_describe=True)
    gateway.register(GatewayCollector(state))
    process = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=process)
    PlatformCollector(registry=process)
    GCCollector(registry=process)
    return Registries(gateway, process)
