// Integration: real grpc-js servers on port 0 built with the runtime, called by
// the runtime's clients. Every server is shut down in afterEach.
import { Client as RawClient, credentials, loadPackageDefinition, type ChannelCredentials, type Client, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import {
  AgentServiceClient,
  AgentServiceService,
  TrainerServiceService,
  type ActRequest,
  type ActResponse,
  type JobEvent,
  WatchJobRequest,
} from '@purify/proto';
import {
  checkHealth,
  createClient,
  listServices,
  Logger,
  LogLevel,
  PurifyError,
  serverStream,
  startServer,
  unary,
  unaryCall,
  type CallContext,
  type HandlerEnv,
  type RunningServer,
  type ServerSettings,
} from '../src';

const settings: ServerSettings = {
  host: '127.0.0.1',
  port: 0,
  maxReceiveMessageBytes: 64 * 1024,
  maxSendMessageBytes: 64 * 1024,
  shutdownGraceMs: 2000,
};
const quiet = new Logger(LogLevel.Silent);

const running: RunningServer[] = [];
const clients: AgentServiceClient[] = [];
afterEach(async () => {
  clients.splice(0).forEach((c) => c.close());
  await Promise.all(running.splice(0).map((s) => s.shutdown()));
});

/** Starts an agent-shaped server whose Act runs `act`. */
async function serve(act: (req: ActRequest, ctx: CallContext) => Promise<ActResponse> | ActResponse, overrides: Partial<ServerSettings> = {}, logger: Logger = quiet) {
  const server = await startServer({
    kind: 'agent',
    settings: { ...settings, ...overrides },
    logger,
    definition: AgentServiceService,
    capabilities: () => ({ 'test.capability': 'yes' }),
    implementation: (env: HandlerEnv) => ({ act: unary<ActRequest, ActResponse>(env, 'Act', act) }),
  });
  running.push(server);
  return server;
}

function client(addresses: string[], maxAttempts = 4): AgentServiceClient {
  const c = createClient(AgentServiceClient, 'agent', { addresses, defaultTimeoutMs: 5000, maxAttempts, maxMessageBytes: 1024 * 1024 });
  clients.push(c);
  return c;
}

const actRequest = (routingKey = 'k'): ActRequest => ({ target: { $case: 'experiment', experiment: 'e' }, routingKey, context: {}, deterministic: false });
/** Opens a grpc.health.v1 Watch stream and records the statuses it receives. */
function watchHealth(address: string) {
  const pkg = loadPackageDefinition(loadSync(healthProtoPath, { keepCase: true, enums: String })) as unknown as {
    grpc: { health: { v1: { Health: new (a: string, c: ChannelCredentials) => Client & { Watch(req: object): ClientReadableStream<{ status: string }> } } } };
  };
  const healthClient = new pkg.grpc.health.v1.Health(address, credentials.createInsecure());
  const seen: string[] = [];
  const waiters: { status: string; resolve: (s: string[]) => void }[] = [];
  const stream = healthClient.Watch({ service: '' });
  stream.on('data', (msg) => {
    seen.push(msg.status);
    waiters.filter((w) => w.status === msg.status).forEach((w) => w.resolve([...seen]));
  });
  stream.on('error', () => undefined);
  return {
    next: (status: string) => new Promise<string[]>((resolve) => (seen.includes(status) ? resolve([...seen]) : waiters.push({ status, resolve }))),
    cancel: () => {
      stream.cancel();
      healthClient.close();
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function rejection(p: Promise<unknown>): Promise<PurifyError> {
  try {
    await p;
  } catch (err) {
    return err as PurifyError;
  }
  throw new Error('expected the call to fail');
}

describe('service runtime over real gRPC', () => {
  it('serves health, reflection and GetInfo', async () => {
    const server = await serve(() => ({ decisions: [], experiment: '', arm: '' }));
    expect(await checkHealth(server.address)).toBe('SERVING');
    expect(await checkHealth(server.address, 'purify.v1.AgentService')).toBe('SERVING');
    expect(await listServices(server.address)).toEqual([
      'grpc.health.v1.Health',
      'grpc.reflection.v1.ServerReflection',
      'grpc.reflection.v1alpha.ServerReflection',
      'purify.v1.AgentService',
    ]);
    const info = await unaryCall(client([server.address]), 'getInfo', {});
    expect(info).toMatchObject({ service: 'agent', capabilities: { 'test.capability': 'yes' }, maxReceiveMessageBytes: 64 * 1024 });
  });

  it('answers DEADLINE_EXCEEDED when the deadline passes, and the handler sees the abort', async () => {
    let sawAbort = false;
    const server = await serve(async (_req, ctx) => {
      await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve()));
      sawAbort = true;
      ctx.throwIfAborted();
      return { decisions: [], experiment: '', arm: '' };
    });
    const err = await rejection(unaryCall(client([server.address]), 'act', actRequest(), { timeoutMs: 150 }));
    expect(err.code).toBe('DEADLINE_EXCEEDED');
    await sleep(100);
    expect(sawAbort).toBe(true);
  });

  it('never starts a handler for a request whose deadline has already passed', async () => {
    let calls = 0;
    const server = await serve(() => {
      calls += 1;
      return { decisions: [], experiment: '', arm: '' };
    });
    const err = await rejection(unaryCall(client([server.address]), 'act', actRequest(), { timeoutMs: -10 }));
    expect(err.code).toBe('DEADLINE_EXCEEDED');
    expect(calls).toBe(0);
  });

  it('propagates the remaining deadline to downstream calls', async () => {
    let downstreamRemainingMs = Infinity;
    const downstream = await serve(async (_req, ctx) => {
      downstreamRemainingMs = ctx.remainingMs();
      await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve()));
      return { decisions: [], experiment: '', arm: '' };
    });
    const downstreamClient = client([downstream.address]);
    const upstream = await serve(async (req, ctx) => unaryCall(downstreamClient, 'act', req, { parent: ctx, timeoutMs: 60_000 }));
    const err = await rejection(unaryCall(client([upstream.address]), 'act', actRequest(), { timeoutMs: 300 }));
    expect(err.code).toBe('DEADLINE_EXCEEDED');
    // The downstream call got (at most) what was left of 300 ms, not its own 60 s.
    expect(downstreamRemainingMs).toBeLessThanOrEqual(300);
    expect(downstreamRemainingMs).toBeGreaterThan(0);
  });

  it('maps a thrown PurifyError to its status and any other error to INTERNAL without a stack; its log lines withhold the values', async () => {
    const lines: string[] = [];
    const server = await serve(
      (req) => {
        if (req.routingKey === 'bad') throw PurifyError.invalidArgument('`routing_key` must not be "bad", got "/data/DOE_JANE/bad"');
        throw new TypeError("cannot open '/data/DOE_JANE/x'");
      },
      {},
      new Logger(LogLevel.Info, {}, (line) => lines.push(line)),
    );
    const c = client([server.address]);
    const invalid = await rejection(unaryCall(c, 'act', actRequest('bad')));
    expect(invalid.code).toBe('INVALID_ARGUMENT');
    // The caller sees what it sent; the service's log keeps neither the quoted value nor the path (#25 item 11).
    expect(invalid.message).toBe('act failed: `routing_key` must not be "bad", got "/data/DOE_JANE/bad"');
    const internal = await rejection(unaryCall(c, 'act', actRequest('other')));
    expect(internal.code).toBe('INTERNAL');
    expect(internal.message).toBe("act failed: cannot open '/data/DOE_JANE/x'");
    const logged = lines.map((l) => JSON.parse(l) as { msg: string; error: string | { message: string } });
    expect(logged.find((l) => l.msg === 'rpc refused')?.error).toBe('`routing_key` must not be ‹3 characters›, got ‹18 characters›');
    expect(logged.find((l) => l.msg === 'rpc failed')?.error).toMatchObject({ message: "cannot open '‹path›'" });
    expect(lines.join('\n')).not.toMatch(/DOE_JANE/);
  });

  it.each([
    // [case, method path, request bytes, what the status message must name]
    ['malformed protobuf (a truncated varint)', '/purify.v1.AgentService/Act', Buffer.from([0x08, 0xff]), 'not a valid protobuf encoding'],
    ['malformed protobuf (wire type 7)', '/purify.v1.AgentService/Act', Buffer.from([0x0f, 0x00]), 'not a valid protobuf encoding'],
    [
      'a uint64 above 2^53 - 1 (WatchJob from_sequence = 2^60)',
      '/purify.v1.TrainerService/WatchJob',
      Buffer.from(WatchJobRequest.encode({ jobId: 'job', fromSequence: 2 ** 60 }).finish()),
      'exceeds 2^53 - 1',
    ],
  ])('answers INVALID_ARGUMENT, not INTERNAL, to a request that does not decode: %s', async (_case, path, bytes, named) => {
    let handlerRan = false;
    const server = await startServer({
      kind: 'agent',
      settings,
      logger: quiet,
      definition: path.includes('Trainer') ? TrainerServiceService : AgentServiceService,
      implementation: (env: HandlerEnv) => ({
        act: unary<ActRequest, ActResponse>(env, 'Act', () => {
          handlerRan = true;
          return { decisions: [], experiment: '', arm: '' };
        }),
        watchJob: serverStream<WatchJobRequest, JobEvent>(env, 'WatchJob', async () => {
          handlerRan = true;
        }),
      }),
    });
    running.push(server);
    const raw = new RawClient(server.address, credentials.createInsecure());
    const identity = (b: Buffer): Buffer => b;
    const err = await new Promise<ServiceError>((resolve) => {
      if (path.endsWith('/Act')) {
        raw.makeUnaryRequest(path, identity, identity, bytes, (e) => resolve(e as ServiceError));
      } else {
        const stream = raw.makeServerStreamRequest(path, identity, identity, bytes);
        stream.on('data', () => undefined);
        stream.on('error', (e: ServiceError) => resolve(e));
      }
    });
    raw.close();
    expect(err.code).toBe(3); // INVALID_ARGUMENT
    expect(err.details).toContain('the request could not be decoded');
    expect(err.details).toContain(named);
    expect(handlerRan).toBe(false);
  });

  it('refuses messages over the configured size limit', async () => {
    const server = await serve(() => ({ decisions: [], experiment: '', arm: '' }), { maxReceiveMessageBytes: 2048 });
    const big = { ...actRequest(), context: { blob: 'x'.repeat(10_000) } };
    const err = await rejection(unaryCall(client([server.address]), 'act', big));
    expect(err.code).toBe('RESOURCE_EXHAUSTED');
  });

  it('balances round-robin over replicas and routes around a dead one', async () => {
    const hits = [0, 0];
    const a = await serve(() => {
      hits[0] = (hits[0] ?? 0) + 1;
      return { decisions: [], experiment: 'a', arm: '' };
    });
    const b = await serve(() => {
      hits[1] = (hits[1] ?? 0) + 1;
      return { decisions: [], experiment: 'b', arm: '' };
    });
    const c = client([a.address, b.address]);
    // Warm up until both subchannels are connected; round-robin then alternates exactly.
    for (let i = 0; i < 4; i++) await unaryCall(c, 'act', actRequest());
    await sleep(100);
    hits.fill(0);
    for (let i = 0; i < 20; i++) await unaryCall(c, 'act', actRequest());
    expect(hits).toEqual([10, 10]);

    await b.shutdown();
    // GetInfo is idempotent: with one replica gone, every call still succeeds.
    for (let i = 0; i < 10; i++) expect((await unaryCall(c, 'getInfo', {})).service).toBe('agent');
  });

  it('drains on shutdown: NOT_SERVING, in-flight calls finish, then new calls fail', async () => {
    let release: () => void = () => undefined;
    const server = await serve(async () => {
      await new Promise<void>((resolve) => {
        release = resolve;
      });
      return { decisions: [], experiment: 'finished', arm: '' };
    });
    const c = client([server.address], 1);
    const watched = watchHealth(server.address);
    const inFlight = unaryCall(c, 'act', actRequest());
    await sleep(100);
    const stopped = server.shutdown();
    // A watcher (like a load balancer) learns NOT_SERVING while calls still drain.
    expect(await watched.next('NOT_SERVING')).toEqual(['SERVING', 'NOT_SERVING']);
    watched.cancel();
    release();
    expect((await inFlight).experiment).toBe('finished');
    await stopped;
    const err = await rejection(unaryCall(c, 'getInfo', {}, { timeoutMs: 500 }));
    expect(['UNAVAILABLE', 'DEADLINE_EXCEEDED']).toContain(err.code);
  });

  it('forces remaining calls closed after the grace period', async () => {
    const server = await serve(() => new Promise<ActResponse>(() => undefined), { shutdownGraceMs: 200 });
    const c = client([server.address], 1);
    const hanging = rejection(unaryCall(c, 'act', actRequest(), { timeoutMs: 10_000 }));
    await sleep(100);
    const t0 = Date.now();
    await server.shutdown();
    expect(Date.now() - t0).toBeLessThan(2000);
    // grpc-js cancels the streams it force-closes.
    expect(['UNAVAILABLE', 'CANCELLED']).toContain((await hanging).code);
  });
});
