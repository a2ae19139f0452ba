// The tracing helpers and the logger's trace ids, in process (no gRPC): the SDK
// is registered with an in-memory exporter before the runtime is loaded.
import { initTelemetry } from '@purify/telemetry';

const telemetry = initTelemetry('helpers', { inMemory: true });
const runtime = require('../src') as typeof import('../src');
const tracing = require('../src/tracing') as typeof import('../src/tracing');
const { trace, context } = require('@opentelemetry/api') as typeof import('@opentelemetry/api');

afterAll(() => telemetry.shutdown());

/** A stand-in for a handler's CallContext: only its identity matters to the helpers. */
const fakeCall = (): import('../src').CallContext => ({}) as import('../src').CallContext;

describe('tracing helpers', () => {
  it('nest child spans, add attributes to a call’s span, and run work in a call’s trace', async () => {
    const lines: string[] = [];
    const logger = new runtime.Logger(runtime.LogLevel.Info, {}, (l) => lines.push(l));
    const call = fakeCall();
    const serverSpan = trace.getTracer('test').startSpan('server');
    tracing.bindTraceContext(call, trace.setSpan(context.active(), serverSpan));

    runtime.addSpanAttributes({ [runtime.SpanAttr.PolicyVersion]: 3 }, call);
    await runtime.withSpan('outer', async () => {
      logger.info('inside');
      await runtime.withSpan('inner', () => undefined, { attributes: { [runtime.SpanAttr.BatchSize]: 8 } });
    }, { parent: call });
    // Outside the handler's flow (e.g. a timer), runInCallTrace restores the call's trace.
    const idsLater = await new Promise((resolve) => setTimeout(() => resolve(runtime.runInCallTrace(call, () => runtime.traceIds())), 5));
    await expect(runtime.withSpan('failing', () => Promise.reject(new Error('no model loaded')), { parent: call })).rejects.toThrow('no model loaded');
    serverSpan.end();
    logger.info('outside');
    await telemetry.flush();

    const spans = telemetry.finishedSpans();
    const byName = new Map(spans.map((s) => [s.name, s]));
    const server = byName.get('server');
    // Expected tree, by hand: server ← outer ← inner; server ← failing.
    expect(byName.get('outer')?.parentSpanContext?.spanId).toBe(server?.spanContext().spanId);
    expect(byName.get('inner')?.parentSpanContext?.spanId).toBe(byName.get('outer')?.spanContext().spanId);
    expect(byName.get('failing')?.parentSpanContext?.spanId).toBe(server?.spanContext().spanId);
    expect(byName.get('failing')?.status).toEqual({ code: 2, message: 'no model loaded' });
    expect(server?.attributes).toEqual({ 'purify.policy.version': 3 });
    expect(byName.get('inner')?.attributes).toEqual({ 'purify.batch.size': 8 });
    expect(idsLater).toEqual({ traceId: server?.spanContext().traceId, spanId: server?.spanContext().spanId });
    expect(runtime.traceIds(call)).toEqual(idsLater);

    const [inside, outside] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(inside).toMatchObject({ msg: 'inside', traceId: server?.spanContext().traceId, spanId: byName.get('outer')?.spanContext().spanId });
    expect(outside?.['traceId']).toBeUndefined();
  });
});
