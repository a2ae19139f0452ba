import { context } from '@opentelemetry/api';
import {
  Metadata,
  type CallOptions,
  type ChannelCredentials,
  type ClientOptions,
  type ClientUnaryCall,
  type ServiceError,
} from '@grpc/grpc-js';
import { SERVICE_NAMES, type ServiceKind } from '@purify/proto';
import { ErrorCode, PurifyError } from './errors';
import type { CallContext } from './handlers';
import { clientCredentials, defaultClientTls, type ClientTlsSettings } from './tls';
import { traceContextOf } from './tracing';

/**
 * Client factory: every channel balances round-robin over its addresses, retries
 * idempotent calls on UNAVAILABLE, and every call made through {@link unaryCall}
 * carries a deadline.
 *
 * Retries happen at two levels. grpc-js's retry policy (service config) repeats
 * an idempotent call that failed with UNAVAILABLE before it was committed — the
 * common case of a replica that went away between calls. It cannot help once
 * the call is committed (response headers arrived, or the request outgrew the
 * 256 KiB retry buffer, which a volume or a batch of patches does at once), nor
 * when a replica that is force-closed resets its streams, which the client sees
 * as CANCELLED. {@link withReplicaRetry} covers those: it runs the whole call
 * again, on whichever replica the balancer picks, while the deadline allows —
 * {@link unaryCall} and the Segment stream helpers use it for idempotent RPCs.
 */

/** RPCs that are safe to retry: repeating them has no further effect. */
export const IDEMPOTENT_METHODS: Readonly<Record<ServiceKind, readonly string[]>> = {
  segmenter: ['GetInfo', 'LoadModel', 'ListModels', 'PredictPatches', 'Segment'],
  reliability: ['GetInfo', 'GetFeatureSchema', 'Score'],
  agent: ['GetInfo', 'ListPolicies', 'GetPolicy', 'GetPolicyMetrics', 'GetExperiment', 'ListExperiments'],
  trainer: ['GetInfo', 'GetJob', 'ListJobs', 'WatchJob'],
};

export interface ClientSettings {
  /** One or more `host:port`; several replicas need IP literals (or one DNS name resolving to all). */
  readonly addresses: readonly string[];
  /** Deadline of calls that do not set their own. */
  readonly defaultTimeoutMs?: number;
  readonly maxMessageBytes?: number;
  /** Attempts per idempotent call, including the first (1 = no retry). */
  readonly maxAttempts?: number;
  /** Explicit channel credentials; wins over `tls`. */
  readonly credentials?: ChannelCredentials;
  /**
   * TLS for this channel. Without `credentials` and `tls` the process default
   * applies (`setDefaultClientTls`, set by `runService` from `--client-tls-*`),
   * and without that, plaintext.
   */
  readonly tls?: ClientTlsSettings;
}

type ClientConstructor<C> = new (address: string, credentials: ChannelCredentials, options?: Partial<ClientOptions>) => C;

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}:\d+$/;
const IPV6 = /^\[[0-9a-fA-F:.]+\]:\d+$/;

/** A gRPC target naming every address, for the round-robin balancer. */
export function targetFor(addresses: readonly string[]): string {
  if (addresses.length === 0) throw PurifyError.invalidArgument('a client needs at least one address');
  if (addresses.length === 1) {
    const only = addresses[0] as string;
    return IPV4.test(only) ? `ipv4:${only}` : IPV6.test(only) ? `ipv6:${only}` : `dns:${only}`;
  }
  if (addresses.every((a) => IPV4.test(a))) return `ipv4:${addresses.join(',')}`;
  if (addresses.every((a) => IPV6.test(a))) return `ipv6:${addresses.join(',')}`;
  throw PurifyError.invalidArgument(
    `several addresses must all be IPv4 or all IPv6 literals (for host names use one DNS name that resolves to every replica), got ${addresses.join(',')}`,
  );
}

/** grpc-js channel options: size limits, round-robin, retry policy for idempotent RPCs. */
export function channelOptions(kind: ServiceKind, settings: ClientSettings): Partial<ClientOptions> {
  const maxAttempts = settings.maxAttempts ?? 4;
  const serviceConfig = {
    loadBalancingConfig: [{ round_robin: {} }],
    methodConfig:
      maxAttempts > 1
        ? [
            {
              name: IDEMPOTENT_METHODS[kind].map((method) => ({ service: SERVICE_NAMES[kind], method })),
              retryPolicy: {
                maxAttempts,
                initialBackoff: '0.1s',
                maxBackoff: '2s',
                backoffMultiplier: 2,
                retryableStatusCodes: ['UNAVAILABLE'],
              },
            },
          ]
        : [],
  };
  const maxBytes = settings.maxMessageBytes ?? 64 * 1024 * 1024;
  return {
    'grpc.service_config': JSON.stringify(serviceConfig),
    'grpc.max_receive_message_length': maxBytes,
    'grpc.max_send_message_length': maxBytes,
    'grpc.enable_retries': 1,
  };
}

interface ClientDefaults {
  readonly kind: ServiceKind;
  readonly timeoutMs: number;
  readonly maxAttempts: number;
}
const clientDefaults = new WeakMap<object, ClientDefaults>();

/** Creates a generated client (e.g. `AgentServiceClient`) for `kind` over `settings.addresses`. */
export function createClient<C extends object>(ctor: ClientConstructor<C>, kind: ServiceKind, settings: ClientSettings): C {
  const transport = settings.credentials ? { credentials: settings.credentials, options: {} } : clientCredentials(settings.tls ?? defaultClientTls());
  const client = new ctor(targetFor(settings.addresses), transport.credentials, { ...channelOptions(kind, settings), ...transport.options });
  clientDefaults.set(client, { kind, timeoutMs: settings.defaultTimeoutMs ?? 30_000, maxAttempts: settings.maxAttempts ?? 4 });
  return client;
}

type UnaryCallback<Res> = (error: ServiceError | null, response: Res) => void;
type UnaryFn<Req, Res> = (request: Req, metadata: Metadata, options: Partial<CallOptions>, callback: UnaryCallback<Res>) => ClientUnaryCall;

type UnaryMethodName<C> = {
  [K in keyof C]: C[K] extends UnaryFn<never, unknown> ? K : never;
}[keyof C];
type RequestOf<F> = F extends UnaryFn<infer Req, unknown> ? Req : never;
type ResponseOf<F> = F extends UnaryFn<never, infer Res> ? Res : never;

export interface CallSettings {
  /** Deadline for this call; default: the client's defaultTimeoutMs. */
  readonly timeoutMs?: number;
  /** When called from inside a handler: propagate its deadline and cancellation. */
  readonly parent?: CallContext;
  readonly metadata?: Metadata;
  readonly signal?: AbortSignal;
}

/** Whether RPC `rpc` (e.g. `Segment`) of `kind` may be repeated: it is listed in {@link IDEMPOTENT_METHODS}. */
export function isIdempotent(kind: ServiceKind, rpc: string): boolean {
  return IDEMPOTENT_METHODS[kind].includes(rpc);
}

/**
 * Whether a failed attempt of an idempotent call may be repeated on another
 * replica: UNAVAILABLE from a replica that went away under the call (connection
 * dropped, stream refused by a draining server), or CANCELLED that the caller
 * did not ask for (a replica that is force-closed resets its open streams with
 * CANCEL). Not repeated: a call the caller cancelled (its signal or parent call
 * aborted, or grpc-js's own "Cancelled on client"), and a call for which the
 * channel had no replica at all ("No connection established": every address is
 * down; grpc-js's retry policy has already repeated it with backoff, and more
 * attempts would only delay the error).
 */
export function isReplicaFailure(err: PurifyError, cancelledByCaller: boolean): boolean {
  if (cancelledByCaller) return false;
  if (err.code === ErrorCode.Unavailable) return !err.message.includes('No connection established');
  return err.code === ErrorCode.Cancelled && !err.message.includes('Cancelled on client');
}

export interface ReplicaRetrySettings {
  /** Deadline of the whole call, all attempts together (ms since the epoch). */
  readonly deadline: number;
  /** Attempts including the first; default: the client's `maxAttempts` for idempotent RPCs, 1 otherwise. */
  readonly maxAttempts?: number;
  readonly signal?: AbortSignal | undefined;
  readonly parent?: CallContext | undefined;
  /** Wait before the 2nd attempt (ms, default 50); doubles up to `maxBackoffMs` (default 1000), with jitter. */
  readonly initialBackoffMs?: number;
  readonly maxBackoffMs?: number;
}

/**
 * Runs `attempt` (one complete call: a new gRPC call each time) and repeats it
 * after a replica failure ({@link isReplicaFailure}) while attempts remain and
 * the deadline leaves time for the backoff. Only RPCs of `client` listed in
 * {@link IDEMPOTENT_METHODS} are repeated, and only for clients made by
 * {@link createClient} (others get one attempt). Rejects with the last
 * attempt's error — except that a repeat which runs out of time rejects with
 * the replica failure that caused it (the deadline went on waiting for a
 * replica, so UNAVAILABLE says more than DEADLINE_EXCEEDED).
 */
export async function withReplicaRetry<T>(client: object, rpc: string, settings: ReplicaRetrySettings, attempt: (attemptNumber: number) => Promise<T>): Promise<T> {
  const defaults = clientDefaults.get(client);
  const maxAttempts = defaults && isIdempotent(defaults.kind, rpc) ? (settings.maxAttempts ?? defaults.maxAttempts) : 1;
  const initial = settings.initialBackoffMs ?? 50;
  const cap = settings.maxBackoffMs ?? 1000;
  let replicaFailure: PurifyError | undefined;
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      const e = PurifyError.wrap(err);
      if (replicaFailure !== undefined && e.code === ErrorCode.DeadlineExceeded) throw replicaFailure;
      const cancelledByCaller = Boolean(settings.signal?.aborted || settings.parent?.signal.aborted);
      if (n >= maxAttempts || !isReplicaFailure(e, cancelledByCaller)) throw err;
      replicaFailure = e;
      // Exponential backoff, jittered to [½, 1) of it so the repeats of many cut calls spread out.
      const backoffMs = Math.min(cap, initial * 2 ** (n - 1)) * (0.5 + Math.random() / 2);
      if (Date.now() + backoffMs >= settings.deadline) throw err;
      if (!(await pause(backoffMs, settings.signal, settings.parent?.signal))) throw err;
    }
  }
}

/** Waits `ms`; resolves false early when a signal aborts. */
function pause(ms: number, ...signals: (AbortSignal | undefined)[]): Promise<boolean> {
  const live = signals.filter((s): s is AbortSignal => s !== undefined);
  if (live.some((s) => s.aborted)) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      live.forEach((s) => s.removeEventListener('abort', onAbort));
      resolve(ok);
    };
    const onAbort = (): void => done(false);
    const timer = setTimeout(() => done(true), ms);
    live.forEach((s) => s.addEventListener('abort', onAbort, { once: true }));
  });
}

/** The RPC name of a generated client method (`predictPatches` → `PredictPatches`). */
function rpcName(method: string): string {
  return method.charAt(0).toUpperCase() + method.slice(1);
}

/**
 * Calls a unary RPC and resolves with its response. The deadline is the sooner of
 * `timeoutMs` and the parent call's deadline; an idempotent RPC is repeated after
 * a replica failure within that deadline ({@link withReplicaRetry}); errors
 * reject as PurifyError with the server's status code.
 */
export function unaryCall<C extends object, M extends UnaryMethodName<C>>(
  client: C,
  method: M,
  request: RequestOf<C[M]>,
  settings: CallSettings = {},
): Promise<ResponseOf<C[M]>> {
  const fn = client[method] as unknown as UnaryFn<RequestOf<C[M]>, ResponseOf<C[M]>>;
  const timeoutMs = settings.timeoutMs ?? clientDefaults.get(client)?.timeoutMs ?? 30_000;
  const deadline = Math.min(Date.now() + timeoutMs, settings.parent ? Date.now() + settings.parent.remainingMs() : Infinity);
  const once = (): Promise<ResponseOf<C[M]>> =>
    new Promise((resolve, reject) => {
      const options: Partial<CallOptions> = settings.parent ? settings.parent.downstream() : {};
      options.deadline = deadline;
      const signal = settings.signal;
      const onAbort = (): void => call.cancel();
      // Inside the parent call's trace context, so the client span is its child.
      const call = context.with(traceContextOf(settings.parent), () =>
        fn.call(client, request, settings.metadata ?? new Metadata(), options, (err, res) => {
          signal?.removeEventListener('abort', onAbort);
          if (err) reject(PurifyError.wrap(err, `${String(method)} failed`));
          else resolve(res);
        }),
      );
      if (signal?.aborted) call.cancel();
      else signal?.addEventListener('abort', onAbort, { once: true });
    });
  return withReplicaRetry(client, rpcName(String(method)), { deadline, signal: settings.signal, parent: settings.parent }, once);
}
