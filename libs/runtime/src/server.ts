import { join } from 'node:path';
import { Server, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { loadSync, type PackageDefinition } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, protoPath as healthProtoPath } from 'grpc-health-check';
import { startMetrics, type MetricsHandle } from '@purify/telemetry';
import { PROTO_FILES, PROTO_ROOT, SERVICE_NAMES, type GetInfoRequest, type ServiceInfo, type ServiceKind } from '@purify/proto';
import { unary, type HandlerEnv } from './handlers';
import { withSafeDecoding } from './decoding';
import type { Logger } from './logger';
import { isLoopbackHost, serverCredentials, serverUsesTls } from './tls';
import { version as VERSION } from '../package.json';

export const HEALTH_SERVICE = 'grpc.health.v1.Health';
export const REFLECTION_SERVICES = ['grpc.reflection.v1.ServerReflection', 'grpc.reflection.v1alpha.ServerReflection'] as const;

export { DEFAULT_PORTS, serverSchema } from './settings';

/**
 * The handlers a service provides: the generated `…ServiceServer` interface
 * without its index signature (which `Omit` would keep, erasing every method
 * type) and without `getInfo`, which the runtime serves.
 */
export type DomainHandlers<Server> = {
  [K in keyof Server as string extends K ? never : K extends 'getInfo' ? never : K]: Server[K];
};

export interface ServerSettings {
  readonly host: string;
  readonly port: number;
  readonly maxReceiveMessageBytes: number;
  readonly maxSendMessageBytes: number;
  readonly shutdownGraceMs: number;
  /** Close connections after this long (clients reconnect and re-resolve); 0/absent = never. */
  readonly maxConnectionAgeMs?: number;
  /** Prometheus endpoint port; 0/absent = none. */
  readonly metricsPort?: number;
  /** Server certificate chain (PEM file); with `tlsKey` = TLS, absent = plaintext. */
  readonly tlsCert?: string | undefined;
  readonly tlsKey?: string | undefined;
  /** CA (PEM file) of accepted client certificates; set = mutual TLS. */
  readonly tlsCa?: string | undefined;
}

export interface StartServerOptions {
  readonly kind: ServiceKind;
  readonly settings: ServerSettings;
  readonly logger: Logger;
  /** The generated service definition (e.g. `SegmenterServiceService`). */
  readonly definition: ServiceDefinition;
  /**
   * Builds the handlers. `getInfo` is provided by the runtime and may be left out.
   */
  readonly implementation: (env: HandlerEnv) => UntypedServiceImplementation;
  /** Compute details reported by GetInfo (execution provider, tfjs backend …). */
  readonly capabilities?: () => Record<string, string>;
  /** Release what the service holds (sessions, files) after the server stopped. */
  readonly onShutdown?: () => Promise<void> | void;
}

export interface RunningServer {
  readonly kind: ServiceKind;
  /** `host:port` actually bound (resolves port 0). */
  readonly address: string;
  readonly port: number;
  readonly health: HealthImplementation;
  /** `host:port` of the Prometheus endpoint, when `metricsPort` > 0. */
  readonly metricsAddress?: string | undefined;
  /** `plaintext`, `tls` or `mtls`. */
  readonly transport?: 'plaintext' | 'tls' | 'mtls';
  /**
   * Calls this server answered, by method and status (`{ Segment: { OK: 12, CANCELLED: 1 } }`):
   * what `purify_rpc_server_requests_total` counts, for this server alone
   * (servers started in one process share one metrics provider). Health and
   * reflection calls are not counted.
   */
  requestCounts(): Record<string, Record<string, number>>;
  /**
   * NOT_SERVING → drain in-flight calls → force-close after the grace period.
   * With a grace period of 0 the force-close happens before this returns.
   */
  shutdown(): Promise<void>;
}

let reflectionDefinition: PackageDefinition | undefined;

/** Our API, health and reflection as one package definition for the reflection service. */
function reflectionPackage(): PackageDefinition {
  if (!reflectionDefinition) {
    const reflectionProtoDir = join(require.resolve('@grpc/reflection/package.json'), '..', 'build', 'proto');
    reflectionDefinition = loadSync(
      [
        ...PROTO_FILES,
        healthProtoPath,
        join(reflectionProtoDir, 'grpc/reflection/v1/reflection.proto'),
        join(reflectionProtoDir, 'grpc/reflection/v1alpha/reflection.proto'),
      ],
      { includeDirs: [PROTO_ROOT, reflectionProtoDir], keepCase: true },
    );
  }
  return reflectionDefinition;
}


/** Starts a gRPC server with health, reflection and GetInfo wired in. */
export async function startServer(options: StartServerOptions): Promise<RunningServer> {
  const { kind, settings, logger } = options;
  const serviceName = SERVICE_NAMES[kind];
  const server = new Server({
    'grpc.max_receive_message_length': settings.maxReceiveMessageBytes,
    'grpc.max_send_message_length': settings.maxSendMessageBytes,
    ...((settings.maxConnectionAgeMs ?? 0) > 0
      ? {
          'grpc.max_connection_age_ms': settings.maxConnectionAgeMs,
          // Calls in flight when the connection ages out may finish within the drain time.
          'grpc.max_connection_age_grace_ms': settings.shutdownGraceMs,
        }
      : {}),
  });
  const served = new Map<string, Map<string, number>>();
  const countCall = (method: string, code: string): void => {
    const byCode = served.get(method) ?? new Map<string, number>();
    byCode.set(code, (byCode.get(code) ?? 0) + 1);
    served.set(method, byCode);
  };
  const env: HandlerEnv = { logger, service: serviceName, onCallEnd: countCall };
  const startedAt = new Date();

  const getInfo = unary<GetInfoRequest, ServiceInfo>(env, 'GetInfo', () => ({
    service: kind,
    version: VERSION,
    commit: process.env['PURIFY_COMMIT'] ?? '',
    startedAt,
    capabilities: options.capabilities?.() ?? {},
    maxReceiveMessageBytes: settings.maxReceiveMessageBytes,
    maxSendMessageBytes: settings.maxSendMessageBytes,
  }));
  server.addService(withSafeDecoding(options.definition), { getInfo, ...options.implementation(env) });

  const health = new HealthImplementation({ '': 'NOT_SERVING', [serviceName]: 'NOT_SERVING' });
  health.addToServer(server);
  new ReflectionService(reflectionPackage(), {
    services: [serviceName, HEALTH_SERVICE, ...REFLECTION_SERVICES],
  }).addToServer(server);

  const bindHost = settings.host.includes(':') ? `[${settings.host}]` : settings.host;
  const credentials = serverCredentials(settings);
  const transport = !serverUsesTls(settings) ? 'plaintext' : settings.tlsCa === undefined ? 'tls' : 'mtls';
  if (transport === 'plaintext' && !isLoopbackHost(settings.host)) {
    logger.warn('serving plaintext gRPC on a non-loopback interface: anyone on the network can read and send requests; set --tls-cert/--tls-key (and --tls-ca)', { host: settings.host });
  }
  let metricsHandle: MetricsHandle | undefined;
  if ((settings.metricsPort ?? 0) > 0) {
    metricsHandle = await startMetrics(kind, { prometheusPort: settings.metricsPort, prometheusHost: settings.host });
  }
  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(`${bindHost}:${settings.port}`, credentials, (err, bound) => {
        if (err) reject(new Error(`cannot listen on ${bindHost}:${settings.port}: ${err.message}`));
        else resolve(bound);
      });
    });
  } catch (err) {
    await metricsHandle?.shutdown();
    throw err;
  }
  health.setStatus('', 'SERVING');
  health.setStatus(serviceName, 'SERVING');
  const address = `${bindHost}:${port}`;
  logger.info('serving', { address, grpcService: serviceName, transport, metrics: metricsHandle?.prometheusAddress });

  let stopping: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    stopping ??= (async () => {
      health.setStatus('', 'NOT_SERVING');
      health.setStatus(serviceName, 'NOT_SERVING');
      let drained = false;
      if (settings.shutdownGraceMs > 0) {
        logger.info('draining', { graceMs: settings.shutdownGraceMs });
        drained = await new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(false), settings.shutdownGraceMs);
          server.tryShutdown(() => {
            clearTimeout(timer);
            resolve(true);
          });
        });
      }
      if (!drained) {
        // With no grace period this happens before shutdown() returns: calls in flight are cut at once, as in a crash.
        logger.warn(settings.shutdownGraceMs > 0 ? 'grace period over, closing remaining calls' : 'no grace period: closing every call now');
        server.forceShutdown();
      }
      await options.onShutdown?.();
      await metricsHandle?.shutdown();
      logger.info('stopped');
    })();
    return stopping;
  };

  const requestCounts = (): Record<string, Record<string, number>> =>
    Object.fromEntries([...served].map(([method, byCode]) => [method, Object.fromEntries(byCode)]));
  return { kind, address, port, health, metricsAddress: metricsHandle?.prometheusAddress, transport, requestCounts, shutdown };
}
