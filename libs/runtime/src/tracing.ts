import { context, ROOT_CONTEXT, SpanStatusCode, trace, type Context, type Span } from '@opentelemetry/api';
import type { CallContext } from './handlers';
import { redactForLog } from './redact';
import { version as VERSION } from '../package.json';

/**
 * Tracing helpers for handlers. The spans themselves come from OpenTelemetry's
 * gRPC instrumentation (registered by `initTelemetry` in each `main.ts`): a
 * server span per incoming call, a client span per outgoing call, linked
 * through the `traceparent` metadata. Without it these helpers do nothing.
 *
 * Attributes must never carry patient data: no names, ids from the PACS, dates
 * of birth, free text from DICOM headers, and no pixel values. Use the keys in
 * {@link SpanAttr} (versions, counts, sizes).
 */

/** Attribute keys of our spans (`purify.*`, numbers and versions only). */
export const SpanAttr = {
  ModelName: 'purify.model.name',
  ModelVersion: 'purify.model.version',
  PolicyName: 'purify.policy.name',
  PolicyVersion: 'purify.policy.version',
  Experiment: 'purify.experiment',
  Round: 'purify.round',
  BatchSize: 'purify.batch.size',
  VoxelCount: 'purify.voxel.count',
  PatchCount: 'purify.patch.count',
  RegionCount: 'purify.region.count',
  Bytes: 'purify.bytes',
} as const;

export type SpanAttributeValue = string | number | boolean;
export type SpanAttributes = Readonly<Record<string, SpanAttributeValue>>;

const TRACER = '@purify/runtime';
const callContexts = new WeakMap<CallContext, Context>();

/** Records the trace context a handler runs in (called by the handler wrappers). */
export function bindTraceContext(ctx: CallContext, otelContext: Context): void {
  callContexts.set(ctx, otelContext);
}

/** The OpenTelemetry context of a call (its server span), or the active one. */
export function traceContextOf(ctx?: CallContext): Context {
  return (ctx && callContexts.get(ctx)) ?? context.active();
}

/**
 * Adds attributes to the span of `ctx` (the call's server span) or, without
 * `ctx`, to the active span. Example: `addSpanAttributes({ [SpanAttr.ModelVersion]: 3 }, ctx)`.
 */
export function addSpanAttributes(attributes: SpanAttributes, ctx?: CallContext): void {
  trace.getSpan(traceContextOf(ctx))?.setAttributes(attributes);
}

export interface WithSpanOptions {
  readonly attributes?: SpanAttributes;
  /** Parent call; default: the active context. */
  readonly parent?: CallContext;
}

/**
 * Runs `fn` inside a child span named `name` (e.g. `segmenter.sliding_window`)
 * and ends it when `fn` settles; a thrown error marks the span ERROR with the
 * error's message and is rethrown. Calls made inside `fn` become its children.
 */
export async function withSpan<T>(name: string, fn: (span: Span) => Promise<T> | T, options: WithSpanOptions = {}): Promise<T> {
  const open = startSpan(name, options);
  try {
    const value = await open.run(() => fn(open.span));
    open.end();
    return value;
  } catch (err) {
    open.end(err);
    throw err;
  }
}

export interface StartSpanOptions extends WithSpanOptions {
  /** Start a new trace (no parent), whatever context is active. */
  readonly root?: boolean;
}

/** A span opened by {@link startSpan}: calls made inside `run` become its children. */
export interface OpenSpan {
  readonly span: Span;
  /** Runs `fn` with this span active (its calls, and the spans they start, are its children). */
  run<T>(fn: () => T): T;
  /** Ends the span (an error marks it ERROR with its message); later calls do nothing. */
  end(error?: unknown): void;
}

/**
 * Opens a span whose extent is marked by events rather than by one function
 * (e.g. a round of the adaptation loop: opened when the round starts, ended by
 * its report). Prefer {@link withSpan} when one function covers the work.
 */
export function startSpan(name: string, options: StartSpanOptions = {}): OpenSpan {
  const tracer = trace.getTracer(TRACER, VERSION);
  const parent = options.root === true ? ROOT_CONTEXT : traceContextOf(options.parent);
  const span = tracer.startSpan(name, { attributes: options.attributes ?? {}, root: options.root === true }, parent);
  const active = trace.setSpan(parent, span);
  let ended = false;
  return {
    span,
    run: (fn) => context.with(active, fn),
    end: (error) => {
      if (ended) return;
      ended = true;
      if (error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: redactForLog(error instanceof Error ? error.message : JSON.stringify(error)) });
      span.end();
    },
  };
}

/**
 * Runs `fn` in the trace context of call `ctx`, so calls it starts with a raw
 * generated client (streams; `unaryCall` with `parent` does this itself)
 * become children of the call's span even when `fn` runs outside the
 * handler's async flow (event handlers, queues).
 */
export function runInCallTrace<T>(ctx: CallContext, fn: () => T): T {
  return context.with(traceContextOf(ctx), fn);
}

/** Trace and span id of the call's span (or the active one); undefined outside a recorded trace. */
export function traceIds(ctx?: CallContext): { traceId: string; spanId: string } | undefined {
  const spanContext = trace.getSpanContext(traceContextOf(ctx));
  if (!spanContext || !trace.isSpanContextValid(spanContext)) return undefined;
  return { traceId: spanContext.traceId, spanId: spanContext.spanId };
}
