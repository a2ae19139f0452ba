import { trace } from '@opentelemetry/api';
import { GrpcInstrumentation } from '@opentelemetry/instrumentation-grpc';
import { envDetector, hostDetector, osDetector, processDetector, resourceFromAttributes, serviceInstanceIdDetector, type ResourceDetector } from '@opentelemetry/resources';
import { InMemorySpanExporter, NoopSpanProcessor, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';

/**
 * Tracing: the OpenTelemetry Node SDK with the gRPC instrumentation, which
 * creates a server span for every incoming call and a client span for every
 * outgoing one, and carries the W3C `traceparent` in gRPC metadata.
 *
 * Spans are always created (so logs carry trace and span ids and a trace
 * continues across services), but exported only when asked:
 *
 * | `OTEL_TRACES_EXPORTER` | spans go to |
 * |---|---|
 * | unset, empty or `none` (default) | nowhere: no exporter, no network |
 * | `otlp` | an OTLP collector; `OTEL_EXPORTER_OTLP_PROTOCOL` (or `…_TRACES_PROTOCOL`) = `http/protobuf` (default), `http/json` or `grpc`; endpoint from `OTEL_EXPORTER_OTLP_ENDPOINT` (or `…_TRACES_ENDPOINT`) |
 * | `console` | stdout |
 * | `otlp,console` | both |
 *
 * `OTEL_SDK_DISABLED=true` turns tracing off entirely (no spans, no ids in
 * logs). Sampler, propagators and resource attributes follow the standard
 * `OTEL_TRACES_SAMPLER`, `OTEL_PROPAGATORS`, `OTEL_RESOURCE_ATTRIBUTES` and
 * `OTEL_NODE_RESOURCE_DETECTORS` variables.
 * Two deliberate differences from the OpenTelemetry defaults: unset means
 * `none`, not `otlp`; and the `process` resource detector leaves out the
 * command line (see {@link REDACTED_RESOURCE_ATTRIBUTES}).
 */

/** gRPC methods that never get spans: probes would flood the traces. */
export const UNTRACED_GRPC_METHODS: readonly string[] = ['Check', 'Watch', 'ServerReflectionInfo'];

export interface TelemetryOptions {
  /**
   * Keep finished spans in memory instead of exporting them (tests); read them
   * with {@link TelemetryHandle.finishedSpans} after {@link TelemetryHandle.flush}.
   */
  readonly inMemory?: boolean;
}

export interface TelemetryHandle {
  readonly service: string;
  /** Where spans go: `['disabled']`, `['none']`, `['memory']`, or the `OTEL_TRACES_EXPORTER` list. */
  readonly traceExporters: readonly string[];
  /** Pushes every finished span to its exporter (call before reading in-memory spans). */
  flush(): Promise<void>;
  /** Spans finished so far (in-memory mode; empty otherwise). */
  finishedSpans(): readonly ReadableSpan[];
  /** Flushes and stops exporters. */
  shutdown(): Promise<void>;
}

type Env = Readonly<Record<string, string | undefined>>;

let active: TelemetryHandle | undefined;

/** True when `@grpc/grpc-js` is already in the module cache. */
export function grpcAlreadyLoaded(cache: Record<string, unknown> = require.cache): boolean {
  return Object.keys(cache).some((path) => /[\\/]@grpc[\\/]grpc-js[\\/]/.test(path));
}

/**
 * Resource attributes never exported: a command line may name a study
 * (`purify pacs run --study <UID>`) or anything else typed on it, and every
 * span of the process would carry it.
 */
export const REDACTED_RESOURCE_ATTRIBUTES: readonly string[] = ['process.command_args', 'process.command_line'];

/** OpenTelemetry's process detector (pid, executable, script, runtime, owner) without {@link REDACTED_RESOURCE_ATTRIBUTES}. */
export const processDetectorWithoutCommandLine: ResourceDetector = {
  detect: (config) => {
    const attributes = { ...processDetector.detect(config).attributes };
    for (const key of REDACTED_RESOURCE_ATTRIBUTES) delete attributes[key];
    return { attributes };
  },
};

const RESOURCE_DETECTORS: Readonly<Record<string, ResourceDetector>> = {
  env: envDetector,
  host: hostDetector,
  os: osDetector,
  process: processDetectorWithoutCommandLine,
  serviceinstance: serviceInstanceIdDetector,
};

/**
 * The resource detectors `OTEL_NODE_RESOURCE_DETECTORS` selects, as the Node
 * SDK reads it (unset or empty: env, process, host; `all`; `none`; or a
 * comma-separated list), with `process` always
 * {@link processDetectorWithoutCommandLine}. Throws naming the variable for an
 * unknown detector.
 */
export function resourceDetectorsFromEnv(env: Env): ResourceDetector[] {
  const names = (env['OTEL_NODE_RESOURCE_DETECTORS'] ?? '').split(',').map((s) => s.trim().toLowerCase()).filter((s) => s !== '');
  if (names.length === 0) return [envDetector, processDetectorWithoutCommandLine, hostDetector];
  if (names.includes('all')) return Object.values(RESOURCE_DETECTORS);
  if (names.includes('none')) return [];
  const unknown = names.filter((name) => !(name in RESOURCE_DETECTORS));
  if (unknown.length > 0) {
    throw new Error(`OTEL_NODE_RESOURCE_DETECTORS must be all, none or a comma-separated list of ${Object.keys(RESOURCE_DETECTORS).join(', ')}, got ${JSON.stringify(env['OTEL_NODE_RESOURCE_DETECTORS'])}`);
  }
  return [...new Set(names)].map((name) => RESOURCE_DETECTORS[name] as ResourceDetector);
}

const KNOWN_TRACE_EXPORTERS = ['otlp', 'console', 'zipkin', 'none'];

/**
 * The trace exporters `env` selects: `['disabled']` when `OTEL_SDK_DISABLED` is
 * true, `['none']` when `OTEL_TRACES_EXPORTER` is unset or empty, else its
 * comma-separated list. Throws naming the variable for an unknown exporter.
 */
export function traceExportersFromEnv(env: Env): readonly string[] {
  if (/^\s*true\s*$/i.test(env['OTEL_SDK_DISABLED'] ?? '')) return ['disabled'];
  const list = [...new Set((env['OTEL_TRACES_EXPORTER'] ?? '').split(',').map((s) => s.trim().toLowerCase()).filter((s) => s !== ''))];
  if (list.length === 0) return ['none'];
  const unknown = list.filter((name) => !KNOWN_TRACE_EXPORTERS.includes(name));
  if (unknown.length > 0) {
    throw new Error(`OTEL_TRACES_EXPORTER must be a comma-separated list of ${KNOWN_TRACE_EXPORTERS.join(', ')}, got ${JSON.stringify(env['OTEL_TRACES_EXPORTER'])}`);
  }
  if (list.includes('none') && list.length > 1) {
    throw new Error(`OTEL_TRACES_EXPORTER cannot combine "none" with other exporters, got ${JSON.stringify(env['OTEL_TRACES_EXPORTER'])}`);
  }
  return list;
}

/**
 * Registers tracing for `service` (span resource `service.name` = `purify-<service>`
 * unless `OTEL_SERVICE_NAME` is set); call once, first thing in `main`, before
 * anything loads `@grpc/grpc-js`. Later calls return the first handle.
 */
export function initTelemetry(service: string, options: TelemetryOptions = {}): TelemetryHandle {
  if (active) return active;
  if (grpcAlreadyLoaded()) {
    throw new Error(`initTelemetry(${service}) must run before @grpc/grpc-js is loaded; call it first in main.ts`);
  }
  process.env['OTEL_SERVICE_NAME'] ??= `purify-${service}`;
  const exporters = options.inMemory ? ['memory'] : traceExportersFromEnv(process.env);
  if (exporters[0] === 'disabled') {
    active = { service, traceExporters: exporters, flush: () => Promise.resolve(), finishedSpans: () => [], shutdown: () => Promise.resolve() };
    return active;
  }

  const memory = options.inMemory ? new InMemorySpanExporter() : undefined;
  let stop: () => Promise<void>;
  if (memory || exporters[0] === 'none') {
    // Nothing to export: a bare tracer provider (spans give logs their ids and
    // downstream calls their parent) — lighter to load than the whole SDK.
    const provider = new NodeTracerProvider({
      resource: resourceFromAttributes({ 'service.name': process.env['OTEL_SERVICE_NAME'] }),
      spanProcessors: [memory ? new SimpleSpanProcessor(memory) : new NoopSpanProcessor()],
    });
    provider.register();
    new GrpcInstrumentation({ ignoreGrpcMethods: [...UNTRACED_GRPC_METHODS] });
    stop = () => provider.shutdown();
  } else {
    // The SDK builds the exporters OTEL_TRACES_EXPORTER names, with the standard
    // OTEL_EXPORTER_OTLP_* settings, resource detectors, sampler and propagators.
    // Required here, not imported: it loads every exporter (~0.2 s), needed only when exporting.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { NodeSDK } = require('@opentelemetry/sdk-node') as typeof import('@opentelemetry/sdk-node');
    const sdk = new NodeSDK({
      // Metrics are started by the runtime once the service's config is known
      // (startMetrics); logs are our own JSON lines on stdout.
      metricReaders: [],
      logRecordProcessors: [],
      resourceDetectors: resourceDetectorsFromEnv(process.env),
      instrumentations: [new GrpcInstrumentation({ ignoreGrpcMethods: [...UNTRACED_GRPC_METHODS] })],
    });
    sdk.start();
    stop = () => sdk.shutdown();
  }
  let stopped: Promise<void> | undefined;
  const handle: TelemetryHandle = {
    service,
    traceExporters: exporters,
    flush: async () => {
      // The global provider is a proxy; the SDK's provider behind it holds the span processors.
      const proxy = trace.getTracerProvider() as unknown as { getDelegate?: () => { forceFlush?: () => Promise<void> } };
      await proxy.getDelegate?.().forceFlush?.();
    },
    finishedSpans: () => memory?.getFinishedSpans() ?? [],
    shutdown: () => (stopped ??= stop()),
  };
  active = handle;
  return handle;
}

/** The handle of {@link initTelemetry}, if it ran in this process. */
export function activeTelemetry(): TelemetryHandle | undefined {
  return active;
}
