import type { ServiceKind } from '@purify/proto';
import { activeMetrics, activeTelemetry, startMetrics } from '@purify/telemetry';
import { ConfigError, HelpRequested, loadConfig, type ConfigOf, type Schema } from './config';
import { Logger } from './logger';
import { serverSchema, startServer, type RunningServer, type StartServerOptions } from './server';
import { checkClientTls, checkServerTls, clientTlsFromSettings, defaultClientTls, setDefaultClientTls, type ClientTlsSettings } from './tls';

/** Message a service sends its parent (the launcher) over IPC once it serves. */
export interface ReadyMessage {
  readonly type: 'purify.ready';
  readonly service: ServiceKind;
  readonly address: string;
  readonly port: number;
  readonly pid: number;
}

export type ServiceSchema = ReturnType<typeof serverSchema> & Schema;

export interface ServiceDefinitionSpec<S extends ServiceSchema> {
  readonly kind: ServiceKind;
  /** `serverSchema(kind)` plus the service's own settings. */
  readonly schema: S;
  /** Builds the service (open stores, sessions …) from its validated config. */
  build(config: ConfigOf<S>, logger: Logger): Promise<Omit<StartServerOptions, 'kind' | 'settings' | 'logger'>>;
}

/** Exit codes of a service process. */
export const ExitCode = { Ok: 0, Failed: 1, BadConfig: 2 } as const;

/** Parses config; on a bad setting prints one line and exits 2 (or prints help and exits 0). */
export function configOrExit<S extends Schema>(schema: S, program: string, envPrefix: string, argv: readonly string[]): ConfigOf<S> {
  try {
    return loadConfig(schema, { argv, env: process.env, envPrefix, program });
  } catch (err) {
    if (err instanceof HelpRequested) {
      process.stdout.write(`${err.message}\n`);
      process.exit(ExitCode.Ok);
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(ExitCode.BadConfig);
    }
    throw err;
  }
}

type BaseConfig = ConfigOf<ReturnType<typeof serverSchema>>;

/** How long a stopping service waits for its last spans and metrics to be exported. */
const FLUSH_TIMEOUT_MS = 5000;

/** Exports the spans and metrics still buffered (an unreachable collector costs at most `timeoutMs`). */
async function flushTelemetry(timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, timeoutMs);
    timer.unref();
  });
  await Promise.race([Promise.all([activeTelemetry()?.shutdown(), activeMetrics()?.shutdown()]), timeout]);
  clearTimeout(timer);
}

/**
 * Cross-setting checks of the transport settings (TLS files present together,
 * PEMs valid, keys matching); returns the client TLS of the service's calls.
 */
function checkTransport(config: BaseConfig, program: string): ClientTlsSettings | undefined {
  try {
    checkServerTls(config);
    const clientTls = clientTlsFromSettings(config);
    if (clientTls) checkClientTls(clientTls);
    return clientTls;
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(`${program}: ${err.message}`);
    throw err;
  }
}

/**
 * The body of every service's `main`: config → server → ready signal → graceful
 * shutdown on SIGTERM/SIGINT or when the parent process goes away.
 */
export function runService<S extends ServiceSchema>(spec: ServiceDefinitionSpec<S>, argv: readonly string[] = process.argv.slice(2)): void {
  const program = `purify-${spec.kind}`;
  const config = configOrExit(spec.schema, program, `PURIFY_${spec.kind.toUpperCase()}`, argv);
  const base = config as BaseConfig;
  try {
    // Every client this service creates without explicit TLS follows --client-tls-*.
    setDefaultClientTls(checkTransport(base, program));
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(ExitCode.BadConfig);
  }
  const logger = new Logger(base.logLevel, { service: spec.kind, pid: process.pid });
  let server: RunningServer | undefined;
  let stopping = false;

  const stop = (reason: string): void => {
    if (stopping) {
      logger.warn('second stop request, exiting now', { reason });
      process.exit(ExitCode.Failed);
    }
    stopping = true;
    logger.info('stopping', { reason });
    void (server?.shutdown() ?? Promise.resolve())
      .then(() => flushTelemetry(FLUSH_TIMEOUT_MS))
      .then(
        () => process.exit(ExitCode.Ok),
        (err: unknown) => {
          logger.error('shutdown failed', { error: err });
          process.exit(ExitCode.Failed);
        },
      );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // Started by the launcher: never outlive it.
  if (process.send) process.on('disconnect', () => stop('parent process went away'));

  void (async () => {
    // Metrics before build, so instruments the service makes there are live.
    await startMetrics(spec.kind, { prometheusPort: base.metricsPort, prometheusHost: base.host });
    const built = await spec.build(config, logger);
    server = await startServer({ ...built, kind: spec.kind, settings: base, logger });
    if (stopping) return void server.shutdown();
    const ready: ReadyMessage = { type: 'purify.ready', service: spec.kind, address: server.address, port: server.port, pid: process.pid };
    process.send?.(ready);
  })().catch((err: unknown) => {
    logger.error('failed to start', { error: err });
    process.stderr.write(`${program}: failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(ExitCode.Failed);
  });
}

/**
 * Starts a service inside the current process (tests, embedded use): same
 * config parsing and wiring as {@link runService}, without signal handlers.
 */
export async function startInProcess<S extends ServiceSchema>(
  spec: ServiceDefinitionSpec<S>,
  argv: readonly string[],
  logger: Logger = new Logger('silent'),
): Promise<RunningServer> {
  const program = `purify-${spec.kind}`;
  const config = loadConfig(spec.schema, { argv, env: {}, envPrefix: `PURIFY_${spec.kind.toUpperCase()}`, program });
  const base = config as BaseConfig;
  const clientTls = checkTransport(base, program);
  // Clients the service creates while it is built follow its --client-tls-*;
  // the process default is restored after (other in-process services keep theirs).
  const previous = defaultClientTls();
  setDefaultClientTls(clientTls);
  // Metrics before build, as in runService: what the service records while it is
  // built (the versions it loads, its queue at start) reaches the endpoint. The
  // server takes this same pipeline over and stops it with itself.
  const metricsHandle = base.metricsPort > 0 ? await startMetrics(spec.kind, { prometheusPort: base.metricsPort, prometheusHost: base.host }) : undefined;
  let built: Omit<StartServerOptions, 'kind' | 'settings' | 'logger'>;
  try {
    built = await spec.build(config, logger);
  } catch (err) {
    await metricsHandle?.shutdown();
    throw err;
  } finally {
    setDefaultClientTls(previous);
  }
  return startServer({ ...built, kind: spec.kind, settings: base, logger });
}
