import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { credentials as grpcCredentials, ServerCredentials, type ChannelCredentials, type ClientOptions } from '@grpc/grpc-js';
import { ConfigError, loadConfig, opt } from './config';

/**
 * Transport security. A server with `--tls-cert`/`--tls-key` serves TLS; with
 * `--tls-ca` as well it requires a client certificate signed by that CA
 * (mutual TLS). Without them it serves plaintext, meant for loopback
 * development only (a warning is logged when it binds another interface).
 *
 * Clients: {@link ClientTlsSettings}. Services read theirs from
 * `--client-tls-ca`, `--client-tls-cert`, `--client-tls-key`,
 * `--client-tls-server-name` (env `PURIFY_<SERVICE>_CLIENT_TLS_…`); other
 * programs (the CLI, the container health probe) from `PURIFY_TLS_CA`,
 * `PURIFY_TLS_CERT`, `PURIFY_TLS_KEY`, `PURIFY_TLS_SERVER_NAME`
 * ({@link clientTlsFromEnv}). Files are PEM; they are read when a server starts
 * or a client is created (rotate by restarting).
 */

/** Server TLS material (paths to PEM files) as the server settings carry it. */
export interface ServerTlsSettings {
  /** Certificate chain of this server. */
  readonly tlsCert?: string | undefined;
  /** Private key of `tlsCert`. */
  readonly tlsKey?: string | undefined;
  /** CA whose client certificates are accepted; set = mutual TLS. */
  readonly tlsCa?: string | undefined;
}

/** How a client secures its channel. Present (even `{}`) = TLS. */
export interface ClientTlsSettings {
  /** PEM file of the CA that signed the servers' certificates; absent = the system's roots. */
  readonly caFile?: string | undefined;
  /** Client certificate chain (mutual TLS); goes with `keyFile`. */
  readonly certFile?: string | undefined;
  readonly keyFile?: string | undefined;
  /**
   * Name the server certificate must carry, when it differs from the host in
   * the address (e.g. dialling replica IPs whose certificate names the Service).
   */
  readonly serverName?: string | undefined;
}

function read(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(`${what} must be a readable file, got ${JSON.stringify(path)} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
}

function certificate(pem: Buffer, flag: string, path: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch {
    throw new ConfigError(`${flag} must be a PEM certificate, got ${JSON.stringify(path)} (not a certificate)`);
  }
}

function keyMatches(certPem: Buffer, keyPem: Buffer, certFlag: string, keyFlag: string, keyPath: string): void {
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey(keyPem);
  } catch {
    throw new ConfigError(`${keyFlag} must be a PEM private key, got ${JSON.stringify(keyPath)} (not a private key)`);
  }
  if (!certificate(certPem, certFlag, '').checkPrivateKey(key)) {
    throw new ConfigError(`${keyFlag} must be the private key of ${certFlag}, got ${JSON.stringify(keyPath)} (a different key)`);
  }
}

/**
 * Checks server TLS settings: cert and key together or neither, a CA only with
 * them, every file a PEM of the right kind, and the key belonging to the
 * certificate. Throws ConfigError with one line naming the flags.
 */
export function checkServerTls(settings: ServerTlsSettings): void {
  const { tlsCert, tlsKey, tlsCa } = settings;
  if ((tlsCert === undefined) !== (tlsKey === undefined)) {
    throw new ConfigError(
      `--tls-cert and --tls-key go together (TLS needs both), got only ${tlsCert !== undefined ? `--tls-cert ${JSON.stringify(tlsCert)}` : `--tls-key ${JSON.stringify(tlsKey)}`}`,
    );
  }
  if (tlsCa !== undefined && tlsCert === undefined) {
    throw new ConfigError(`--tls-ca (mutual TLS) needs --tls-cert and --tls-key as well, got only --tls-ca ${JSON.stringify(tlsCa)}`);
  }
  if (tlsCert === undefined || tlsKey === undefined) return;
  const cert = read(tlsCert, '--tls-cert');
  certificate(cert, '--tls-cert', tlsCert);
  keyMatches(cert, read(tlsKey, '--tls-key'), '--tls-cert', '--tls-key', tlsKey);
  if (tlsCa !== undefined) certificate(read(tlsCa, '--tls-ca'), '--tls-ca', tlsCa);
}

/** True when the server settings ask for TLS. */
export function serverUsesTls(settings: ServerTlsSettings): boolean {
  return settings.tlsCert !== undefined;
}

/** grpc-js server credentials: TLS, mutual TLS, or plaintext when no certificate is set. */
export function serverCredentials(settings: ServerTlsSettings): ServerCredentials {
  checkServerTls(settings);
  if (settings.tlsCert === undefined || settings.tlsKey === undefined) return ServerCredentials.createInsecure();
  const ca = settings.tlsCa === undefined ? null : read(settings.tlsCa, '--tls-ca');
  return ServerCredentials.createSsl(ca, [{ cert_chain: read(settings.tlsCert, '--tls-cert'), private_key: read(settings.tlsKey, '--tls-key') }], ca !== null);
}

/** Checks client TLS settings like {@link checkServerTls}; `names` are the flags or variables they came from. */
export function checkClientTls(tls: ClientTlsSettings, names = { ca: '--client-tls-ca', cert: '--client-tls-cert', key: '--client-tls-key' }): void {
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
    throw new ConfigError(
      `${names.cert} and ${names.key} go together (a client certificate needs its key), got only ${tls.certFile !== undefined ? `${names.cert} ${JSON.stringify(tls.certFile)}` : `${names.key} ${JSON.stringify(tls.keyFile)}`}`,
    );
  }
  if (tls.caFile !== undefined) certificate(read(tls.caFile, names.ca), names.ca, tls.caFile);
  if (tls.certFile !== undefined && tls.keyFile !== undefined) {
    const cert = read(tls.certFile, names.cert);
    certificate(cert, names.cert, tls.certFile);
    keyMatches(cert, read(tls.keyFile, names.key), names.cert, names.key, tls.keyFile);
  }
}

/**
 * Channel credentials and options for `tls`: plaintext when `tls` is
 * undefined, else TLS trusting `caFile` (or the system roots), presenting the
 * client certificate when given, checking the server's name against
 * `serverName` when given.
 */
export function clientCredentials(tls: ClientTlsSettings | undefined): { credentials: ChannelCredentials; options: Partial<ClientOptions> } {
  if (tls === undefined) return { credentials: grpcCredentials.createInsecure(), options: {} };
  const credentials = grpcCredentials.createSsl(
    tls.caFile === undefined ? null : read(tls.caFile, 'the client TLS CA file'),
    tls.keyFile === undefined ? null : read(tls.keyFile, 'the client TLS key file'),
    tls.certFile === undefined ? null : read(tls.certFile, 'the client TLS certificate file'),
  );
  const options: Partial<ClientOptions> =
    tls.serverName === undefined ? {} : { 'grpc.ssl_target_name_override': tls.serverName, 'grpc.default_authority': tls.serverName };
  return { credentials, options };
}

/** The client TLS options of a service's settings (`--client-tls-*`), or undefined when none is set. */
export function clientTlsFromSettings(settings: {
  readonly clientTlsCa?: string | undefined;
  readonly clientTlsCert?: string | undefined;
  readonly clientTlsKey?: string | undefined;
  readonly clientTlsServerName?: string | undefined;
}): ClientTlsSettings | undefined {
  if (settings.clientTlsCa === undefined && settings.clientTlsCert === undefined && settings.clientTlsKey === undefined) return undefined;
  return { caFile: settings.clientTlsCa, certFile: settings.clientTlsCert, keyFile: settings.clientTlsKey, serverName: settings.clientTlsServerName };
}

/** Client TLS flags for programs that only call services (the CLI): `--tls-ca`, `--tls-cert`, `--tls-key`, `--tls-server-name`. */
export function clientTlsSchema() {
  return {
    tlsCa: opt.optional(opt.file('CA certificate (PEM) the servers are checked against; setting any --tls-* turns TLS on', undefined)),
    tlsCert: opt.optional(opt.file('Client certificate (PEM) for mutual TLS; needs --tls-key', undefined)),
    tlsKey: opt.optional(opt.file('Private key (PEM) of --tls-cert', undefined)),
    tlsServerName: opt.optional(opt.string('Name the server certificates carry, when it differs from the address host', undefined)),
  };
}

/**
 * Client TLS from `PURIFY_TLS_CA`, `PURIFY_TLS_CERT`, `PURIFY_TLS_KEY`,
 * `PURIFY_TLS_SERVER_NAME` (prefix configurable); undefined when none of the
 * first three is set. Throws ConfigError naming the variable for a bad file.
 */
export function clientTlsFromEnv(env: Readonly<Record<string, string | undefined>> = process.env, prefix = 'PURIFY'): ClientTlsSettings | undefined {
  const config = loadConfig(clientTlsSchema(), { argv: [], env, envPrefix: prefix, program: prefix.toLowerCase() });
  if (config.tlsCa === undefined && config.tlsCert === undefined && config.tlsKey === undefined) return undefined;
  const tls: ClientTlsSettings = { caFile: config.tlsCa, certFile: config.tlsCert, keyFile: config.tlsKey, serverName: config.tlsServerName };
  checkClientTls(tls, { ca: `${prefix}_TLS_CA`, cert: `${prefix}_TLS_CERT`, key: `${prefix}_TLS_KEY` });
  return tls;
}

let processDefault: ClientTlsSettings | undefined;

/**
 * Sets the TLS that clients created without `tls`/`credentials` use (by
 * `createClient` and the probes). `runService` sets it from the service's
 * `--client-tls-*` settings, so a service's clients follow its configuration
 * without code; `undefined` = plaintext.
 */
export function setDefaultClientTls(tls: ClientTlsSettings | undefined): void {
  processDefault = tls;
}

export function defaultClientTls(): ClientTlsSettings | undefined {
  return processDefault;
}

/** True for 127.0.0.0/8, ::1 and `localhost`. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}
