import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { metrics } from '@opentelemetry/api';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import { ConsoleMetricExporter, MeterProvider, PeriodicExportingMetricReader, type IMetricReader } from '@opentelemetry/sdk-metrics';

/**
 * Metrics: one process-wide MeterProvider, started once the service's config is
 * known (the Prometheus port is a service setting), with these readers:
 *
 * - Prometheus text format on `http://<host>:<prometheusPort>/metrics` when the
 *   port is > 0 (the runtime's `--metrics-port`);
 * - OTLP over HTTP (`http/json`, to `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` or
 *   `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/metrics`) when `OTEL_METRICS_EXPORTER`
 *   contains `otlp`, every `OTEL_METRIC_EXPORT_INTERVAL` ms (default 60000);
 * - stdout when `OTEL_METRICS_EXPORTER` contains `console`.
 *
 * Unset `OTEL_METRICS_EXPORTER` means none (no network), as for traces.
 * Instruments are created through `@opentelemetry/api`; before a provider is
 * registered they are no-ops, so code must look its instruments up after
 * {@link startMetrics} (the runtime's helpers do this lazily).
 */

export interface MetricsOptions {
  /** Serve Prometheus text format on this port; 0 or absent = no endpoint. */
  readonly prometheusPort?: number;
  /** Interface for the Prometheus endpoint (default 127.0.0.1). */
  readonly prometheusHost?: string;
  /** Environment to read `OTEL_METRICS_EXPORTER` from (default process.env). */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

export interface MetricsHandle {
  readonly service: string;
  /** `host:port` of the Prometheus endpoint (port resolved), when serving one. */
  readonly prometheusAddress: string | undefined;
  /** Active readers: `prometheus`, `otlp`, `console`. Empty = metrics off (instruments are no-ops). */
  readonly exporters: readonly string[];
  /** Stops the endpoint and exporters (after a last export) and unregisters the provider. */
  shutdown(): Promise<void>;
}

type Env = Readonly<Record<string, string | undefined>>;

const KNOWN_METRIC_EXPORTERS = ['otlp', 'console', 'none'];

/** `OTEL_METRICS_EXPORTER` as a list (unset/empty/`none` = []); throws naming the variable for unknown values. */
export function metricExportersFromEnv(env: Env): readonly string[] {
  if (/^\s*true\s*$/i.test(env['OTEL_SDK_DISABLED'] ?? '')) return [];
  const raw = env['OTEL_METRICS_EXPORTER'] ?? '';
  const list = [...new Set(raw.split(',').map((s) => s.trim().toLowerCase()).filter((s) => s !== ''))];
  const unknown = list.filter((name) => !KNOWN_METRIC_EXPORTERS.includes(name));
  if (unknown.length > 0) {
    throw new Error(`OTEL_METRICS_EXPORTER must be a comma-separated list of ${KNOWN_METRIC_EXPORTERS.join(', ')} (the Prometheus endpoint is the --metrics-port setting), got ${JSON.stringify(raw)}`);
  }
  return list.filter((name) => name !== 'none');
}

let active: { handle: MetricsHandle; port: number } | undefined;

/**
 * Starts the metrics pipeline of this process, or returns the running one when
 * it asks for the same (or no) Prometheus port. Asking for a different port
 * while one runs is an error: there is one provider per process.
 */
export async function startMetrics(service: string, options: MetricsOptions = {}): Promise<MetricsHandle> {
  const port = options.prometheusPort ?? 0;
  if (active) {
    if (port === 0 || port === active.port) return active.handle;
    throw new Error(`metrics already run in this process for ${active.handle.service} (Prometheus port ${active.port}); cannot also serve port ${port}`);
  }
  const exporters = metricExportersFromEnv(options.env ?? process.env);
  const readers: IMetricReader[] = [];
  let prometheus: PrometheusExporter | undefined;
  if (port > 0) {
    prometheus = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true });
    readers.push(prometheus);
  }
  if (exporters.includes('otlp')) {
    const interval = Number(options.env?.['OTEL_METRIC_EXPORT_INTERVAL'] ?? process.env['OTEL_METRIC_EXPORT_INTERVAL'] ?? 60_000);
    readers.push(new PeriodicExportingMetricReader({ exporter: new OTLPMetricExporter(), exportIntervalMillis: Number.isFinite(interval) && interval > 0 ? interval : 60_000 }));
  }
  if (exporters.includes('console')) {
    readers.push(new PeriodicExportingMetricReader({ exporter: new ConsoleMetricExporter() }));
  }
  const names = [...(prometheus ? ['prometheus'] : []), ...exporters];
  if (readers.length === 0) {
    // Nothing reads metrics: leave the API's no-op provider in place.
    return { service, prometheusAddress: undefined, exporters: [], shutdown: () => Promise.resolve() };
  }

  const provider = new MeterProvider({
    resource: defaultResource().merge(resourceFromAttributes({ 'service.name': process.env['OTEL_SERVICE_NAME'] ?? `purify-${service}` })),
    readers,
  });
  let server: Server | undefined;
  let address: string | undefined;
  if (prometheus) {
    const exporter = prometheus;
    const host = options.prometheusHost ?? '127.0.0.1';
    server = createServer((req, res) => {
      if (req.method === 'GET' && (req.url ?? '').split('?')[0] === '/metrics') exporter.getMetricsRequestHandler(req, res);
      else {
        res.statusCode = 404;
        res.end('not found: metrics are served at GET /metrics\n');
      }
    });
    const listening = server;
    try {
      await new Promise<void>((resolve, reject) => {
        listening.once('error', reject);
        listening.listen(port, host, () => resolve());
      });
    } catch (err) {
      await provider.shutdown();
      throw new Error(`cannot serve metrics on ${host}:${port}: ${err instanceof Error ? err.message : String(err)}`);
    }
    const bound = listening.address() as AddressInfo;
    address = `${host.includes(':') ? `[${host}]` : host}:${bound.port}`;
  }
  metrics.setGlobalMeterProvider(provider);

  let stopped: Promise<void> | undefined;
  const handle: MetricsHandle = {
    service,
    prometheusAddress: address,
    exporters: names,
    shutdown: () =>
      (stopped ??= (async () => {
        if (active?.handle === handle) active = undefined;
        metrics.disable();
        if (server) {
          const closing = server;
          const closed = new Promise<void>((resolve) => closing.close(() => resolve()));
          closing.closeAllConnections();
          await closed;
        }
        await provider.shutdown();
      })()),
  };
  active = { handle, port };
  return handle;
}

/** The running metrics pipeline of this process, if any. */
export function activeMetrics(): MetricsHandle | undefined {
  return active?.handle;
}
