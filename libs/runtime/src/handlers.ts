import type {
  CallOptions,
  handleBidiStreamingCall,
  handleServerStreamingCall,
  handleUnaryCall,
  ServerDuplexStream,
  ServerUnaryCall,
  ServerWritableStream,
} from '@grpc/grpc-js';
import { context } from '@opentelemetry/api';
import { decoded } from './decoding';
import { ErrorCode, PurifyError, toGrpcError } from './errors';
import type { Logger } from './logger';
import { recordRpc } from './metrics';
import { redactForLog } from './redact';
import { bindTraceContext } from './tracing';

/** What a handler knows about the call it serves. */
export interface CallContext {
  /** `/package.Service/Method`. */
  readonly method: string;
  /** Aborted when the client cancels or the deadline passes; long work checks it. */
  readonly signal: AbortSignal;
  /** The client's deadline, if it set one. */
  readonly deadline: Date | undefined;
  readonly logger: Logger;
  /** Milliseconds left before the deadline (Infinity without one). */
  remainingMs(): number;
  /**
   * Options for calls this handler makes to other services: the deadline and
   * cancellation of this call are propagated (grpc-js `parent`).
   */
  downstream(): CallOptions;
  /** Throws CANCELLED / DEADLINE_EXCEEDED if the call is over; use between work items. */
  throwIfAborted(): void;
}

type AnyServerCall =
  | ServerUnaryCall<unknown, unknown>
  | ServerWritableStream<unknown, unknown>
  | ServerDuplexStream<unknown, unknown>;

function deadlineOf(call: AnyServerCall): Date | undefined {
  const d = call.getDeadline();
  if (d instanceof Date) return Number.isFinite(d.getTime()) ? d : undefined;
  return Number.isFinite(d) ? new Date(d) : undefined;
}

class Context implements CallContext {
  readonly signal: AbortSignal;
  readonly deadline: Date | undefined;
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly call: AnyServerCall,
    readonly method: string,
    readonly logger: Logger,
  ) {
    this.signal = this.controller.signal;
    this.deadline = deadlineOf(call);
    (call as NodeJS.EventEmitter).on('cancelled', () => this.abort(new PurifyError(ErrorCode.Cancelled, `${method} cancelled by the client`)));
    if (this.deadline) {
      const ms = this.deadline.getTime() - Date.now();
      this.timer = setTimeout(
        () => this.abort(new PurifyError(ErrorCode.DeadlineExceeded, `${method} ran past its deadline`)),
        Math.max(0, ms),
      );
      this.timer.unref();
    }
  }

  remainingMs(): number {
    return this.deadline ? this.deadline.getTime() - Date.now() : Infinity;
  }

  downstream(): CallOptions {
    // grpc-js propagates deadline and cancellation from `parent` by default.
    return { parent: this.call as never, deadline: this.deadline ?? Infinity };
  }

  throwIfAborted(): void {
    if (this.signal.aborted) throw this.signal.reason;
    if (this.remainingMs() <= 0) {
      throw new PurifyError(ErrorCode.DeadlineExceeded, `${this.method} ran past its deadline`);
    }
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
  }

  private abort(reason: PurifyError): void {
    if (!this.controller.signal.aborted) this.controller.abort(reason);
  }
}

/** Shared by every handler of one server. */
export interface HandlerEnv {
  readonly logger: Logger;
  /** `package.Service`, prefixed to method names in logs and messages. */
  readonly service: string;
  /** Called once per finished call with its method and status (`OK` or an ErrorCode): the server's own count. */
  readonly onCallEnd?: (method: string, code: string) => void;
}

/**
 * Logs the outcome of a call and records its metrics. Never logs the request or
 * response: payloads may carry patient data.
 */
function logOutcome(env: HandlerEnv, method: string, started: number, err?: PurifyError): void {
  const elapsedMs = performance.now() - started;
  recordRpc(env.service, method, err ? err.grpcStatus : 0, err ? err.code : 'OK', elapsedMs / 1000);
  env.onCallEnd?.(method, err ? err.code : 'OK');
  const fields = { method, durationMs: Math.round(elapsedMs * 10) / 10 };
  if (!err) env.logger.debug('rpc ok', fields);
  else if (err.code === ErrorCode.Internal) env.logger.error('rpc failed', { ...fields, code: err.code, error: err, cause: err.cause });
  else env.logger.info('rpc refused', { ...fields, code: err.code, error: redactForLog(err.message) });
}

function begin(env: HandlerEnv, call: AnyServerCall, name: string): Context {
  const ctx = new Context(call, `/${env.service}/${name}`, env.logger);
  // The gRPC instrumentation runs the handler inside the call's server span.
  bindTraceContext(ctx, context.active());
  // A request that arrives after its deadline is not started at all.
  ctx.throwIfAborted();
  return ctx;
}

/**
 * Wraps a promise-returning handler into a grpc-js unary handler: errors become
 * gRPC statuses (PurifyError → its code, anything else → INTERNAL), the callback
 * is called exactly once, and the context carries deadline and cancellation.
 */
export function unary<Req, Res>(
  env: HandlerEnv,
  name: string,
  handler: (request: Req, ctx: CallContext) => Promise<Res> | Res,
): handleUnaryCall<Req, Res> {
  return (call, callback) => {
    const started = performance.now();
    let ctx: Context | undefined;
    let answered = false;
    const answer = (err: PurifyError | null, res?: Res): void => {
      if (answered) return;
      answered = true;
      ctx?.dispose();
      logOutcome(env, name, started, err ?? undefined);
      if (err) callback(toGrpcError(err));
      else callback(null, res);
    };
    Promise.resolve()
      .then(() => {
        ctx = begin(env, call, name);
        return handler(decoded(call.request, ctx.method), ctx);
      })
      .then(
        (res) => answer(null, res),
        (err: unknown) => answer(PurifyError.wrap(err)),
      );
  };
}

/** Server-streaming counterpart of {@link unary}: the handler writes with `send`. */
export function serverStream<Req, Res>(
  env: HandlerEnv,
  name: string,
  handler: (request: Req, send: (msg: Res) => Promise<void>, ctx: CallContext) => Promise<void>,
): handleServerStreamingCall<Req, Res> {
  return (call) => {
    runStream(env, name, call, (ctx) => handler(decoded(call.request, ctx.method), writer(call, ctx), ctx));
  };
}

/**
 * Reads a client's stream one message at a time with back-pressure. Unlike
 * `for await`, stopping early does not destroy the call, so the handler can
 * still answer (e.g. with an error status) after reading only the first message.
 */
export class MessageReader<T> {
  private readonly queue: T[] = [];
  private ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly stream: NodeJS.ReadableStream,
    private readonly highWaterMark = 16,
    private readonly method = 'the request stream',
  ) {
    stream.on('data', (msg: T) => {
      this.queue.push(msg);
      if (this.queue.length >= this.highWaterMark) stream.pause();
      this.notify();
    });
    stream.on('end', () => {
      this.ended = true;
      this.notify();
    });
    stream.on('error', (err: Error) => {
      this.failure = err;
      this.notify();
    });
  }

  /** The next message, or undefined once the client has half-closed the stream. */
  async next(signal?: AbortSignal): Promise<T | undefined> {
    for (;;) {
      if (this.queue.length > 0) {
        const msg = this.queue.shift() as T;
        if (this.queue.length < this.highWaterMark / 2 && this.stream.isPaused()) this.stream.resume();
        return decoded(msg, this.method);
      }
      if (this.failure) throw PurifyError.wrap(this.failure, 'reading the request stream');
      if (this.ended) return undefined;
      if (signal?.aborted) throw signal.reason;
      await new Promise<void>((resolve) => {
        const onAbort = (): void => resolve();
        this.wake = () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    }
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

/**
 * Bidirectional-streaming counterpart of {@link unary}: the handler reads the
 * client's messages from `requests` and writes with `send`.
 */
export function bidiStream<Req, Res>(
  env: HandlerEnv,
  name: string,
  handler: (requests: MessageReader<Req>, send: (msg: Res) => Promise<void>, ctx: CallContext) => Promise<void>,
): handleBidiStreamingCall<Req, Res> {
  return (call) => {
    const reader = new MessageReader<Req>(call, 16, `/${env.service}/${name}`);
    runStream(env, name, call, (ctx) => handler(reader, writer(call, ctx), ctx));
  };
}

/** A `send` that respects back-pressure and stops when the call is over. */
function writer<Res>(call: ServerWritableStream<unknown, Res> | ServerDuplexStream<unknown, Res>, ctx: CallContext) {
  return (msg: Res): Promise<void> => {
    ctx.throwIfAborted();
    if (call.write(msg)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const onDrain = (): void => {
        ctx.signal.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = (): void => {
        call.removeListener('drain', onDrain);
        reject(ctx.signal.reason as Error);
      };
      call.once('drain', onDrain);
      ctx.signal.addEventListener('abort', onAbort, { once: true });
    });
  };
}

function runStream(env: HandlerEnv, name: string, call: AnyServerCall, body: (ctx: Context) => Promise<void>): void {
  const started = performance.now();
  let ctx: Context | undefined;
  const stream = call as ServerWritableStream<unknown, unknown>;
  Promise.resolve()
    .then(() => {
      ctx = begin(env, call, name);
      return body(ctx);
    })
    .then(
      () => {
        ctx?.dispose();
        logOutcome(env, name, started);
        stream.end();
      },
      (err: unknown) => {
        ctx?.dispose();
        const wrapped = PurifyError.wrap(err);
        logOutcome(env, name, started, wrapped);
        // grpc-js turns an 'error' on a server stream into the call's status and ends it.
        stream.emit('error', toGrpcError(wrapped));
      },
    );
}
