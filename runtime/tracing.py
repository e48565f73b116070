"""OpenTelemetry tracing, available by setting (`RETAILFLOW_OTEL_ENABLED=true`).

Spans cover workflow starts, signals, updates, workflow runs and every activity (Temporal's own
`TracingInterceptor`). Spans go to the OTLP endpoint in the standard `OTEL_EXPORTER_OTLP_ENDPOINT` when
`opentelemetry-exporter-otlp` is installed, else to stderr. Install with `pip install 'retailflow[otel]'`.
"""

from __future__ import annotations

import os
from typing import Any

from runtime.settings import ObservabilitySettings

_provider: Any = None


def configure_tracer_provider(settings: ObservabilitySettings, exporter: Any | None = None) -> None:
    """Install the global tracer provider once (OpenTelemetry allows one); `exporter` adds one more sink."""
    global _provider
    if _provider is not None:
        if exporter is not None:
            from opentelemetry.sdk.trace.export import SimpleSpanProcessor

            _provider.add_span_processor(SimpleSpanProcessor(exporter))
        return
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": settings.otel_service_name}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)
    _provider = provider


def tracing_interceptors(settings: ObservabilitySettings) -> list:
    """The Temporal interceptors to add when tracing is enabled (none otherwise)."""
    if not settings.otel_enabled:
        return []
    try:
        from temporalio.contrib.opentelemetry import TracingInterceptor
    except ImportError as exc:  # pragma: no cover - depends on the optional extra
        raise RuntimeError("RETAILFLOW_OTEL_ENABLED needs `pip install 'retailflow[otel]'`") from exc
    configure_tracer_provider(settings)
    return [TracingInterceptor()]
