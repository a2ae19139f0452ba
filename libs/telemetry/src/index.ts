/**
 * @purify/telemetry — the one place where OpenTelemetry is registered.
 *
 * OpenTelemetry's gRPC instrumentation patches `@grpc/grpc-js` when it is first
 * loaded, so {@link initTelemetry} must run before anything imports grpc-js.
 * Every service `main.ts` therefore calls it first and only then `require`s its
 * server module; the check below turns a wrong order into a start-up error
 * instead of silently missing spans.
 *
 * Exporters (OTLP, console) are chosen by the standard `OTEL_*` environment
 * variables; until the observability issue (#8) registers the SDK here, the hook
 * only fixes the service name and the load order.
 */

export interface TelemetryHandle {
  readonly service: string;
  /** Flushes and stops exporters. */
  shutdown(): Promise<void>;
}

let active: TelemetryHandle | undefined;

/** True when `@grpc/grpc-js` is already in the module cache. */
export function grpcAlreadyLoaded(cache: Record<string, unknown> = require.cache): boolean {
  return Object.keys(cache).some((path) => /[\\/]@grpc[\\/]grpc-js[\\/]/.test(path));
}

/** Registers telemetry for `service`; call once, before grpc-js loads. */
export function initTelemetry(service: string): TelemetryHandle {
  if (active) return active;
  if (grpcAlreadyLoaded()) {
    throw new Error(`initTelemetry(${service}) must run before @grpc/grpc-js is loaded; call it first in main.ts`);
  }
  process.env['OTEL_SERVICE_NAME'] ??= `purify-${service}`;
  active = { service, shutdown: () => Promise.resolve() };
  return active;
}
