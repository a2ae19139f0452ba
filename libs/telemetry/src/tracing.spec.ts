import { trace } from '@opentelemetry/api';
import { envDetector, hostDetector, osDetector, processDetector, serviceInstanceIdDetector } from '@opentelemetry/resources';
import { initTelemetry, processDetectorWithoutCommandLine, resourceDetectorsFromEnv, traceExportersFromEnv } from './tracing';

describe('traceExportersFromEnv', () => {
  it.each([
    // [env, expected exporters]
    [{}, ['none']],
    [{ OTEL_TRACES_EXPORTER: '' }, ['none']],
    [{ OTEL_TRACES_EXPORTER: 'none' }, ['none']],
    [{ OTEL_TRACES_EXPORTER: 'otlp' }, ['otlp']],
    [{ OTEL_TRACES_EXPORTER: 'OTLP, console ,otlp' }, ['otlp', 'console']],
    [{ OTEL_TRACES_EXPORTER: 'otlp', OTEL_SDK_DISABLED: 'true' }, ['disabled']],
    [{ OTEL_TRACES_EXPORTER: 'otlp', OTEL_SDK_DISABLED: 'false' }, ['otlp']],
  ])('%p → %p', (env, expected) => {
    expect(traceExportersFromEnv(env)).toEqual(expected);
  });

  it.each([
    // [value, exact message]
    ['jaeger', 'OTEL_TRACES_EXPORTER must be a comma-separated list of otlp, console, zipkin, none, got "jaeger"'],
    ['none,otlp', 'OTEL_TRACES_EXPORTER cannot combine "none" with other exporters, got "none,otlp"'],
  ])('refuses %p', (value, message) => {
    expect(() => traceExportersFromEnv({ OTEL_TRACES_EXPORTER: value })).toThrow(new Error(message));
  });
});

describe('initTelemetry', () => {
  it('by default records spans (ids for logs and propagation) but exports none', async () => {
    delete process.env['OTEL_TRACES_EXPORTER'];
    delete process.env['OTEL_SDK_DISABLED'];
    const handle = initTelemetry('unit');
    expect(handle.traceExporters).toEqual(['none']);
    expect(process.env['OTEL_SERVICE_NAME']).toBe('purify-unit');
    const span = trace.getTracer('test').startSpan('work');
    expect(trace.isSpanContextValid(span.spanContext())).toBe(true);
    span.end();
    await handle.flush();
    expect(handle.finishedSpans()).toEqual([]);
    // A second call returns the first handle.
    expect(initTelemetry('other')).toBe(handle);
    await handle.shutdown();
  });
});

describe('resource detectors', () => {
  it.each([
    // [OTEL_NODE_RESOURCE_DETECTORS, expected detectors in order]
    [undefined, ['env', 'process', 'host']],
    ['', ['env', 'process', 'host']],
    ['none', []],
    ['all', ['env', 'host', 'os', 'process', 'serviceinstance']],
    ['Process, host,process', ['process', 'host']],
  ])('%p → %p', (value, expected) => {
    // By identity (the detectors are field-less objects, equal to each other by value).
    const nameOf = new Map<unknown, string>([[envDetector, 'env'], [hostDetector, 'host'], [osDetector, 'os'], [processDetectorWithoutCommandLine, 'process'], [serviceInstanceIdDetector, 'serviceinstance']]);
    expect(resourceDetectorsFromEnv(value === undefined ? {} : { OTEL_NODE_RESOURCE_DETECTORS: value }).map((d) => nameOf.get(d) ?? 'unexpected')).toEqual(expected);
  });

  it('refuses an unknown detector naming the variable', () => {
    expect(() => resourceDetectorsFromEnv({ OTEL_NODE_RESOURCE_DETECTORS: 'process,container' })).toThrow(
      new Error('OTEL_NODE_RESOURCE_DETECTORS must be all, none or a comma-separated list of env, host, os, process, serviceinstance, got "process,container"'),
    );
  });

  it('the process detector reports this process but not its command line (it may name a study)', () => {
    const attributes = processDetectorWithoutCommandLine.detect().attributes ?? {};
    expect(attributes['process.pid']).toBe(process.pid);
    expect(attributes['process.executable.path']).toBe(process.execPath);
    // OpenTelemetry's own detector has the arguments; ours drops exactly those.
    expect(Object.keys(processDetector.detect().attributes ?? {}).filter((k) => !(k in attributes)).sort()).toEqual(['process.command_args']);
    expect(Object.keys(attributes).filter((k) => k.startsWith('process.command_'))).toEqual([]);
  });
});
