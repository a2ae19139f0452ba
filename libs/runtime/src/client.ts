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
import { PurifyError } from './errors';
import type { CallContext } from './handlers';
import { clientCredentials, defaultClientTls, type ClientTlsSettings } from './tls';
import { traceContextOf } from './tracing';

/**
 * Client factory: every channel balances round-robin over its addresses, retries
 * idempotent calls on UNAVAILABLE, and every call made through {@link unaryCall}
 * carries a deadline.
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

const defaultTimeouts = new WeakMap<object, number>();

/** Creates a generated client (e.g. `AgentServiceClient`) for `kind` over `settings.addresses`. */
export function createClient<C extends object>(ctor: ClientConstructor<C>, kind: ServiceKind, settings: ClientSettings): C {
  const transport = settings.credentials ? { credentials: settings.credentials, options: {} } : clientCredentials(settings.tls ?? defaultClientTls());
  const client = new ctor(targetFor(settings.addresses), transport.credentials, { ...channelOptions(kind, settings), ...transport.options });
  defaultTimeouts.set(client, settings.defaultTimeoutMs ?? 30_000);
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

/**
 * Calls a unary RPC and resolves with its response. The deadline is the sooner of
 * `timeoutMs` and the parent call's deadline; errors reject as PurifyError with
 * the server's status code.
 */
export function unaryCall<C extends object, M extends UnaryMethodName<C>>(
  client: C,
  method: M,
  request: RequestOf<C[M]>,
  settings: CallSettings = {},
): Promise<ResponseOf<C[M]>> {
  const fn = client[method] as unknown as UnaryFn<RequestOf<C[M]>, ResponseOf<C[M]>>;
  const timeoutMs = settings.timeoutMs ?? defaultTimeouts.get(client) ?? 30_000;
  const options: Partial<CallOptions> = settings.parent ? settings.parent.downstream() : {};
  options.deadline = Math.min(Date.now() + timeoutMs, settings.parent ? Date.now() + settings.parent.remainingMs() : Infinity);
  return new Promise((resolve, reject) => {
    // Inside the parent call's trace context, so the client span is its child.
    const call = context.with(traceContextOf(settings.parent), () =>
      fn.call(client, request, settings.metadata ?? new Metadata(), options, (err, res) => {
        if (err) reject(PurifyError.wrap(err, `${String(method)} failed`));
        else resolve(res);
      }),
    );
    settings.signal?.addEventListener('abort', () => call.cancel(), { once: true });
  });
}
