"""Prometheus metrics for ``retold serve`` (``/metrics``) and ``retold worker`` (``--metrics-port``).

Needs ``retold[otel]`` plus ``opentelemetry-sdk`` and
``opentelemetry-exporter-prometheus``. The command gives its engine a meter
provider of its own that exports to prometheus_client's registry, so a
meter provider the application set up is left alone.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MISSING", "asgi_app", "meter_provider", "start_server"]

MISSING = (
    "Prometheus metrics need OpenTelemetry's SDK and Prometheus exporter: "
    "pip install 'retold[otel]' opentelemetry-sdk opentelemetry-exporter-prometheus"
)


def meter_provider() -> Any | None:
    """A meter provider exporting to Prometheus, or None if the packages are missing."""
    try:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider
    except ImportError:
        return None
    return MeterProvider(metric_readers=[PrometheusMetricReader()])


def asgi_app() -> Any:
    """The ASGI app answering Prometheus's scrapes."""
    import prometheus_client

    return prometheus_client.make_asgi_app()


def start_server(host: str, port: int) -> None:
    """Serve the metrics on ``http://host:port/metrics`` from a background thread."""
    import prometheus_client

    prometheus_client.start_http_server(port, addr=host)
