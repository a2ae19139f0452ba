import { join } from 'node:path';
import { Server, ServerCredentials, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { loadSync, type PackageDefinition } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, protoPath as healthProtoPath } from 'grpc-health-check';
import { PROTO_FILES, PROTO_ROOT, SERVICE_NAMES, type GetInfoRequest, type ServiceInfo, type ServiceKind } from '@purify/proto';
import { opt } from './config';
import { unary, type HandlerEnv } from './handlers';
import { LogLevel, type Logger } from './logger';
import { version as VERSION } from '../package.json';

export const HEALTH_SERVICE = 'grpc.health.v1.Health';
export const REFLECTION_SERVICES = ['grpc.reflection.v1.ServerReflection', 'grpc.reflection.v1alpha.ServerReflection'] as const;

/** Default loopback ports of the four services (`purify up` uses them unless told otherwise). */
export const DEFAULT_PORTS: Readonly<Record<ServiceKind, number>> = {
  segmenter: 50151,
  reliability: 50152,
  agent: 50153,
  trainer: 50154,
};

/** Settings every server has; services extend this schema with their own. */
export function serverSchema(kind: ServiceKind) {
  return {
    host: opt.string('Interface to listen on (0.0.0.0 in containers)', '127.0.0.1'),
    port: opt.port('Port to listen on; 0 picks a free one', DEFAULT_PORTS[kind]),
    maxReceiveMessageBytes: opt.int('Largest message the server accepts, bytes', 64 * 1024 * 1024, { min: 1024, max: 2 ** 31 - 1 }),
    maxSendMessageBytes: opt.int('Largest message the server sends, bytes', 64 * 1024 * 1024, { min: 1024, max: 2 ** 31 - 1 }),
    shutdownGraceMs: opt.int('On SIGTERM, how long in-flight calls may finish before they are cut', 10_000, { min: 0, max: 600_000 }),
    logLevel: opt.oneOf('Least severe log level written', Object.values(LogLevel), LogLevel.Info),
  };
}

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
  /** NOT_SERVING → drain in-flight calls → force-close after the grace period. */
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
  });
  const env: HandlerEnv = { logger, service: serviceName };
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
  server.addService(options.definition, { getInfo, ...options.implementation(env) });

  const health = new HealthImplementation({ '': 'NOT_SERVING', [serviceName]: 'NOT_SERVING' });
  health.addToServer(server);
  new ReflectionService(reflectionPackage(), {
    services: [serviceName, HEALTH_SERVICE, ...REFLECTION_SERVICES],
  }).addToServer(server);

  const bindHost = settings.host.includes(':') ? `[${settings.host}]` : settings.host;
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${bindHost}:${settings.port}`, ServerCredentials.createInsecure(), (err, bound) => {
      if (err) reject(new Error(`cannot listen on ${bindHost}:${settings.port}: ${err.message}`));
      else resolve(bound);
    });
  });
  health.setStatus('', 'SERVING');
  health.setStatus(serviceName, 'SERVING');
  const address = `${bindHost}:${port}`;
  logger.info('serving', { address, grpcService: serviceName });

  let stopping: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    stopping ??= (async () => {
      health.setStatus('', 'NOT_SERVING');
      health.setStatus(serviceName, 'NOT_SERVING');
      logger.info('draining', { graceMs: settings.shutdownGraceMs });
      const drained = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), settings.shutdownGraceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve(true);
        });
      });
      if (!drained) {
        logger.warn('grace period over, closing remaining calls');
        server.forceShutdown();
      }
      await options.onShutdown?.();
      logger.info('stopped');
    })();
    return stopping;
  };

  return { kind, address, port, health, shutdown };
}
