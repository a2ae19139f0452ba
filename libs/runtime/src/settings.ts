import type { ServiceKind } from '@purify/proto';
import { opt } from './config';
import { LogLevel } from './logger';

/*
 * The settings every server has. Kept apart from server.ts (which loads the
 * gRPC server, reflection and the metrics SDK) so that light programs — the
 * container health probe — can read them cheaply.
 */

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
    shutdownGraceMs: opt.int('On SIGTERM, how long in-flight calls may finish before they are cut (0 = cut at once)', 10_000, { min: 0, max: 600_000 }),
    logLevel: opt.oneOf('Least severe log level written', Object.values(LogLevel), LogLevel.Info),
    maxConnectionAgeMs: opt.int('Close client connections after this long (they reconnect and re-resolve DNS, so new replicas behind a headless Service get traffic); 0 = never', 0, { min: 0, max: 2 ** 31 - 1 }),
    metricsPort: opt.port('Port of the Prometheus endpoint (GET /metrics, on --host); 0 = no endpoint', 0),
    tlsCert: opt.optional(opt.file('Server certificate chain (PEM); with --tls-key the server speaks TLS, without them plaintext (loopback development only)', undefined)),
    tlsKey: opt.optional(opt.file('Private key (PEM) of --tls-cert', undefined)),
    tlsCa: opt.optional(opt.file('CA certificate (PEM): clients must present a certificate it signed (mutual TLS)', undefined)),
    clientTlsCa: opt.optional(opt.file('For calls to other services: CA (PEM) their certificates are checked against; setting it turns TLS on', undefined)),
    clientTlsCert: opt.optional(opt.file('For calls to other services: client certificate (PEM) for mutual TLS; needs --client-tls-key', undefined)),
    clientTlsKey: opt.optional(opt.file('Private key (PEM) of --client-tls-cert', undefined)),
    clientTlsServerName: opt.optional(opt.string('For calls to other services: name their certificates carry, when it differs from the address host', undefined)),
  };
}

