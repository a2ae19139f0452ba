// TLS and mutual TLS over real grpc-js servers on port 0, with certificates the
// test makes with openssl (test/certs.ts). Every server is shut down in afterEach.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AgentServiceClient, AgentServiceService, type ActRequest, type ActResponse } from '@purify/proto';
import {
  ConfigError,
  Logger,
  LogLevel,
  PurifyError,
  checkHealth,
  checkServerTls,
  clientTlsFromEnv,
  createClient,
  healthcheck,
  listServices,
  serverSchema,
  startInProcess,
  startServer,
  unary,
  unaryCall,
  type ClientTlsSettings,
  type RunningServer,
  type ServerSettings,
  type ServiceDefinitionSpec,
} from '../src';
import { makeTestPki, type TestPki } from './certs';

let pki: TestPki;
beforeAll(() => {
  pki = makeTestPki();
});

const base: ServerSettings = { host: '127.0.0.1', port: 0, maxReceiveMessageBytes: 1 << 20, maxSendMessageBytes: 1 << 20, shutdownGraceMs: 500 };
const running: RunningServer[] = [];
const clients: AgentServiceClient[] = [];
afterEach(async () => {
  clients.splice(0).forEach((c) => c.close());
  await Promise.all(running.splice(0).map((s) => s.shutdown()));
});

let handled = 0;
async function serve(tls: Partial<ServerSettings>, logger = new Logger(LogLevel.Silent)): Promise<RunningServer> {
  const server = await startServer({
    kind: 'agent',
    settings: { ...base, ...tls },
    logger,
    definition: AgentServiceService,
    implementation: (env) => ({
      act: unary<ActRequest, ActResponse>(env, 'Act', () => {
        handled += 1;
        return { decisions: [], experiment: 'secure', arm: '' };
      }),
    }),
  });
  running.push(server);
  return server;
}

const request: ActRequest = { target: { $case: 'experiment', experiment: 'e' }, routingKey: 'k', context: {}, deterministic: false };

async function call(address: string, tls: ClientTlsSettings | undefined): Promise<string> {
  const client = createClient(AgentServiceClient, 'agent', { addresses: [address], defaultTimeoutMs: 3000, maxAttempts: 1, ...(tls ? { tls } : {}) });
  clients.push(client);
  try {
    return (await unaryCall(client, 'act', request)).experiment;
  } catch (err) {
    return (err as PurifyError).code;
  }
}

describe('TLS', () => {
  it('serves TLS to a client trusting the CA, and refuses plaintext and a client trusting another CA', async () => {
    const server = await serve({ tlsCert: pki.server.cert, tlsKey: pki.server.key });
    expect(server.transport).toBe('tls');
    handled = 0;
    // [client, expected]: the answer, or the status of a refused connection.
    expect(await call(server.address, { caFile: pki.ca.cert })).toBe('secure');
    expect(await call(server.address, undefined)).toBe('UNAVAILABLE');
    expect(await call(server.address, { caFile: pki.otherCa.cert })).toBe('UNAVAILABLE');
    expect(handled).toBe(1);
  });

  it('checks the server name, which serverName can set when dialling an address the certificate does not name', async () => {
    // The certificate names only DNS:purify-agent.test; we dial 127.0.0.1.
    const server = await serve({ tlsCert: pki.namedServer.cert, tlsKey: pki.namedServer.key });
    expect(await call(server.address, { caFile: pki.ca.cert })).toBe('UNAVAILABLE');
    expect(await call(server.address, { caFile: pki.ca.cert, serverName: 'purify-agent.test' })).toBe('secure');
    expect(await call(server.address, { caFile: pki.ca.cert, serverName: 'someone-else.test' })).toBe('UNAVAILABLE');
  });
});

describe('mutual TLS', () => {
  it.each([
    // [case, expected answer or status, client TLS]
    ['client certificate from the CA', 'secure', () => ({ caFile: pki.ca.cert, certFile: pki.client.cert, keyFile: pki.client.key })],
    ['no client certificate', 'UNAVAILABLE', () => ({ caFile: pki.ca.cert })],
    ['client certificate from another CA', 'UNAVAILABLE', () => ({ caFile: pki.ca.cert, certFile: pki.strangerClient.cert, keyFile: pki.strangerClient.key })],
    ['good certificate but trusting the wrong CA', 'UNAVAILABLE', () => ({ caFile: pki.otherCa.cert, certFile: pki.client.cert, keyFile: pki.client.key })],
    ['plaintext', 'UNAVAILABLE', (): ClientTlsSettings | undefined => undefined],
  ])('%s → %s', async (_name, expected, tls) => {
    const server = await serve({ tlsCert: pki.server.cert, tlsKey: pki.server.key, tlsCa: pki.ca.cert });
    expect(server.transport).toBe('mtls');
    handled = 0;
    expect(await call(server.address, tls())).toBe(expected);
    expect(handled).toBe(expected === 'secure' ? 1 : 0);
  });

  it('probes health and reflection over mutual TLS, and fails without a certificate', async () => {
    const server = await serve({ tlsCert: pki.server.cert, tlsKey: pki.server.key, tlsCa: pki.ca.cert });
    const tls = { caFile: pki.ca.cert, certFile: pki.client.cert, keyFile: pki.client.key };
    expect(await checkHealth(server.address, '', 3000, tls)).toBe('SERVING');
    expect(await listServices(server.address, 3000, tls)).toContain('purify.v1.AgentService');
    await expect(checkHealth(server.address, '', 3000, { caFile: pki.ca.cert })).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });

  it('the container health probe answers for plaintext, TLS and mTLS servers from the environment', async () => {
    const plain = await serve({});
    const mtls = await serve({ tlsCert: pki.server.cert, tlsKey: pki.server.key, tlsCa: pki.ca.cert });
    // [env, expected ok]
    expect(await healthcheck('agent', { PURIFY_AGENT_PORT: String(plain.port) })).toEqual({ ok: true, message: `agent at 127.0.0.1:${plain.port}: SERVING` });
    const mtlsEnv = { PURIFY_AGENT_PORT: String(mtls.port), PURIFY_AGENT_TLS_CERT: pki.server.cert, PURIFY_AGENT_TLS_KEY: pki.server.key, PURIFY_AGENT_TLS_CA: pki.ca.cert };
    expect((await healthcheck('agent', mtlsEnv)).ok).toBe(true);
    // Without the TLS settings the probe speaks plaintext to a TLS server: not healthy.
    expect((await healthcheck('agent', { PURIFY_AGENT_PORT: String(mtls.port) }, 1000)).ok).toBe(false);
    expect(await healthcheck('gateway', {})).toEqual({ ok: false, message: 'usage: healthcheck.js <segmenter|reliability|agent|trainer>, got "gateway"' });
  });
});

describe('transport settings', () => {
  it('adds TLS and metrics flags to every service schema, all off by default', () => {
    const schema = serverSchema('segmenter');
    // [key, expected default]
    expect(schema.metricsPort.default).toBe(0);
    for (const key of ['tlsCert', 'tlsKey', 'tlsCa', 'clientTlsCa', 'clientTlsCert', 'clientTlsKey', 'clientTlsServerName'] as const) {
      expect([key, schema[key].default, schema[key].optional]).toEqual([key, undefined, true]);
    }
  });

  it.each([
    // [case, settings, exact message]
    ['cert without key', () => ({ tlsCert: pki.server.cert }), () => `--tls-cert and --tls-key go together (TLS needs both), got only --tls-cert ${JSON.stringify(pki.server.cert)}`],
    ['key without cert', () => ({ tlsKey: pki.server.key }), () => `--tls-cert and --tls-key go together (TLS needs both), got only --tls-key ${JSON.stringify(pki.server.key)}`],
    ['CA alone', () => ({ tlsCa: pki.ca.cert }), () => `--tls-ca (mutual TLS) needs --tls-cert and --tls-key as well, got only --tls-ca ${JSON.stringify(pki.ca.cert)}`],
    ['key of another certificate', () => ({ tlsCert: pki.server.cert, tlsKey: pki.client.key }), () => `--tls-key must be the private key of --tls-cert, got ${JSON.stringify(pki.client.key)} (a different key)`],
    ['key where the certificate belongs', () => ({ tlsCert: pki.server.key, tlsKey: pki.server.key }), () => `--tls-cert must be a PEM certificate, got ${JSON.stringify(pki.server.key)} (not a certificate)`],
    ['certificate where the key belongs', () => ({ tlsCert: pki.server.cert, tlsKey: pki.server.cert }), () => `--tls-key must be a PEM private key, got ${JSON.stringify(pki.server.cert)} (not a private key)`],
    ['CA that is not a certificate', () => ({ tlsCert: pki.server.cert, tlsKey: pki.server.key, tlsCa: pki.ca.key }), () => `--tls-ca must be a PEM certificate, got ${JSON.stringify(pki.ca.key)} (not a certificate)`],
  ])('refuses %s', (_name, settings, message) => {
    expect(() => checkServerTls(settings())).toThrow(new ConfigError(message()));
  });

  it('accepts TLS and mTLS settings and no settings', () => {
    expect(() => checkServerTls({})).not.toThrow();
    expect(() => checkServerTls({ tlsCert: pki.server.cert, tlsKey: pki.server.key })).not.toThrow();
    expect(() => checkServerTls({ tlsCert: pki.server.cert, tlsKey: pki.server.key, tlsCa: pki.ca.cert })).not.toThrow();
  });

  it('a service refuses half-configured TLS at start with a one-line message naming the program', async () => {
    const spec: ServiceDefinitionSpec<ReturnType<typeof serverSchema>> = {
      kind: 'agent',
      schema: serverSchema('agent'),
      build: async () => ({ definition: AgentServiceService, implementation: () => ({}) }),
    };
    await expect(startInProcess(spec, ['--port', '0', '--client-tls-cert', pki.client.cert])).rejects.toThrow(
      new ConfigError(`purify-agent: --client-tls-cert and --client-tls-key go together (a client certificate needs its key), got only --client-tls-cert ${JSON.stringify(pki.client.cert)}`),
    );
    await expect(startInProcess(spec, ['--port', '0', '--tls-cert', pki.server.cert])).rejects.toThrow(
      new ConfigError(`purify-agent: --tls-cert and --tls-key go together (TLS needs both), got only --tls-cert ${JSON.stringify(pki.server.cert)}`),
    );
  });

  it('reads client TLS for the CLI from PURIFY_TLS_*', () => {
    expect(clientTlsFromEnv({})).toBeUndefined();
    expect(clientTlsFromEnv({ PURIFY_TLS_CA: pki.ca.cert, PURIFY_TLS_CERT: pki.client.cert, PURIFY_TLS_KEY: pki.client.key, PURIFY_TLS_SERVER_NAME: 'purify-agent' })).toEqual({
      caFile: pki.ca.cert,
      certFile: pki.client.cert,
      keyFile: pki.client.key,
      serverName: 'purify-agent',
    });
    const missing = join(pki.dir, 'missing.pem');
    expect(() => clientTlsFromEnv({ PURIFY_TLS_CA: missing })).toThrow(
      new ConfigError(`purify: invalid --tls-ca (from env PURIFY_TLS_CA): must be an existing readable file (no such path), got ${JSON.stringify(missing)}`),
    );
    const notPem = join(pki.dir, 'not.pem');
    writeFileSync(notPem, 'hello');
    expect(() => clientTlsFromEnv({ PURIFY_TLS_CA: notPem })).toThrow(new ConfigError(`PURIFY_TLS_CA must be a PEM certificate, got ${JSON.stringify(notPem)} (not a certificate)`));
  });

  it('closes connections older than --max-connection-age-ms; the client reconnects and every call succeeds', async () => {
    const peers = new Set<string>();
    const server = await startServer({
      kind: 'agent',
      settings: { ...base, maxConnectionAgeMs: 150 },
      logger: new Logger(LogLevel.Silent),
      definition: AgentServiceService,
      // A raw grpc-js handler, to see the client's address and port (one per connection).
      implementation: () => ({
        act: (call: { getPeer(): string }, callback: (err: null, res: ActResponse) => void) => {
          peers.add(call.getPeer());
          callback(null, { decisions: [], experiment: 'aged', arm: '' });
        },
      }),
    });
    running.push(server);
    // One client, 4 calls 400 ms apart: its connection ages out (150 ms) between calls and it reconnects.
    const client = createClient(AgentServiceClient, 'agent', { addresses: [server.address], defaultTimeoutMs: 3000, maxAttempts: 1 });
    clients.push(client);
    const answers: string[] = [];
    for (let i = 0; i < 4; i++) {
      answers.push((await unaryCall(client, 'act', request)).experiment);
      await new Promise((r) => setTimeout(r, 400));
    }
    expect(answers).toEqual(['aged', 'aged', 'aged', 'aged']);
    // Each reconnection comes from a new client port.
    expect(peers.size).toBeGreaterThan(1);
  });

  it('warns when a plaintext server binds a non-loopback interface, and only then', async () => {
    // [host, tls, expected warning count]
    const cases: [string, Partial<ServerSettings>, number][] = [
      ['0.0.0.0', {}, 1],
      ['127.0.0.1', {}, 0],
      ['0.0.0.0', { tlsCert: '', tlsKey: '' }, 0],
    ];
    for (const [host, tls, expected] of cases) {
      const lines: string[] = [];
      const logger = new Logger(LogLevel.Warn, {}, (line) => lines.push(line));
      const settings = 'tlsCert' in tls ? { tlsCert: pki.server.cert, tlsKey: pki.server.key } : {};
      await serve({ host, ...settings }, logger);
      expect([host, lines.filter((l) => l.includes('serving plaintext gRPC on a non-loopback interface')).length]).toEqual([host, expected]);
    }
  });
});
