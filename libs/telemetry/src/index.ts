/**
 * @purify/telemetry — the one place where OpenTelemetry is registered.
 *
 * OpenTelemetry's gRPC instrumentation patches `@grpc/grpc-js` when it is first
 * loaded, so {@link initTelemetry} must run before anything imports grpc-js.
 * Every service `main.ts` (and the CLI) therefore calls it first and only then
 * `require`s its server module; a wrong order is a start-up error instead of
 * silently missing spans.
 *
 * Traces: see `tracing.ts` (exporter from `OTEL_TRACES_EXPORTER`, off by
 * default). Metrics: see `metrics.ts` (Prometheus endpoint on the service's
 * `--metrics-port`, OTLP from `OTEL_METRICS_EXPORTER`). The runtime
 * (`@purify/runtime`) holds the helpers handlers use; this package holds the SDK.
 */
export { UNTRACED_GRPC_METHODS, activeTelemetry, grpcAlreadyLoaded, initTelemetry, traceExportersFromEnv } from './tracing';
export type { TelemetryHandle, TelemetryOptions } from './tracing';
export { activeMetrics, metricExportersFromEnv, startMetrics } from './metrics';
export type { MetricsHandle, MetricsOptions } from './metrics';
export type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
