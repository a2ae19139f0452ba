import { trace } from '@opentelemetry/api';
import { initTelemetry, traceExportersFromEnv } from './tracing';

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
