// Failover at the client layer, over real grpc-js servers on port 0: two
// replicas behind one round-robin client, and replica A is force-closed (drain
// time 0) while a call is in flight on it. The client sees that call end with
// CANCELLED (grpc-js resets the streams of a force-closed server), which grpc-js's
// retry policy never repeats, and a stream that already received a message is
// committed, which it does not repeat either: `unaryCall` and `withReplicaRetry`
// must run such idempotent calls again on replica B, within the deadline.
import {
  AgentServiceClient,
  AgentServiceService,
  PolicyVersion,
  TrainerServiceClient,
  TrainerServiceService,
  type ActRequest,
  type ActResponse,
  type GetPolicyRequest,
  type JobEvent,
  type WatchJobRequest,
} from '@purify/proto';
import { Metadata, type ServiceError } from '@grpc/grpc-js';
import {
  ErrorCode,
  Logger,
  LogLevel,
  PurifyError,
  createClient,
  isReplicaFailure,
  serverStream,
  startServer,
  unary,
  unaryCall,
  withReplicaRetry,
  type CallContext,
  type HandlerEnv,
  type RunningServer,
  type ServerSettings,
} from '../src';

const settings: ServerSettings = {
  host: '127.0.0.1',
  port: 0,
  maxReceiveMessageBytes: 1 << 20,
  maxSendMessageBytes: 1 << 20,
  // A stop is a kill: calls in flight are cut at once.
  shutdownGraceMs: 0,
};
const quiet = new Logger(process.env['DBG'] ? LogLevel.Debug : LogLevel.Silent);

/** Resolves when `signal` aborts. */
const aborted = (signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));

/** A promise with its resolve function. */
function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve: (value: T) => void = () => undefined;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/**
 * A replica that answers ('answer') or holds every call until it is cancelled
 * ('hold'); `landed` resolves when a call reaches a holding replica, `cut` with
 * the reason the call ended on it.
 */
interface Replica {
  readonly name: string;
  readonly server: RunningServer;
  readonly landed: Promise<void>;
  readonly cut: Promise<unknown>;
}

const servers: RunningServer[] = [];
const clients: { close(): void }[] = [];
afterEach(async () => {
  clients.splice(0).forEach((c) => c.close());
  await Promise.all(servers.splice(0).map((s) => s.shutdown()));
});

async function agentReplica(name: string, mode: 'answer' | 'hold'): Promise<Replica> {
  const landed = deferred();
  const cut = deferred<unknown>();
  const behave = async <T>(ctx: CallContext, answer: T): Promise<T> => {
    if (mode === 'answer') return answer;
    landed.resolve();
    await aborted(ctx.signal);
    cut.resolve(ctx.signal.reason);
    throw ctx.signal.reason;
  };
  const server = await startServer({
    kind: 'agent',
    settings,
    logger: quiet,
    definition: AgentServiceService,
    implementation: (env: HandlerEnv) => ({
      getPolicy: unary<GetPolicyRequest, PolicyVersion>(env, 'GetPolicy', (_req, ctx) => behave(ctx, PolicyVersion.fromPartial({ ref: { name, version: 1 } }))),
      act: unary<ActRequest, ActResponse>(env, 'Act', (_req, ctx) => behave(ctx, { decisions: [], experiment: name, arm: '' })),
    }),
  });
  servers.push(server);
  return { name, server, landed: landed.promise, cut: cut.promise };
}

/** Calls GetInfo until every replica has answered one: both subchannels are READY, round-robin alternates from here on. */
async function warmUp(client: AgentServiceClient | TrainerServiceClient, replicas: readonly Replica[]): Promise<void> {
  const end = Date.now() + 10_000;
  while (!replicas.every((r) => (r.server.requestCounts()['GetInfo']?.['OK'] ?? 0) > 0)) {
    if (Date.now() > end) throw new Error('the replicas did not all become reachable within 10 s');
    await unaryCall(client as AgentServiceClient, 'getInfo', {});
  }
}

/**
 * Starts calls until one lands on the holding replica `a` (round-robin
 * alternates, so within two); returns that call (wrapped: an async function
 * returning a bare promise would wait for it).
 */
async function landOn<T>(a: Replica, start: () => Promise<T>): Promise<{ call: Promise<T> }> {
  for (let i = 0; i < 4; i++) {
    const call = start();
    // Settled calls went to the answering replica; keep their rejections from going unhandled.
    call.catch(() => undefined);
    const where = await Promise.race([a.landed.then(() => 'a' as const), call.then(() => 'b' as const, () => 'b' as const)]);
    if (where === 'a') return { call };
  }
  throw new Error('no call landed on the holding replica in 4 tries');
}

async function agentPair(maxAttempts = 4): Promise<{ a: Replica; b: Replica; client: AgentServiceClient }> {
  const a = await agentReplica('a', 'hold');
  const b = await agentReplica('b', 'answer');
  const client = createClient(AgentServiceClient, 'agent', { addresses: [a.server.address, b.server.address], defaultTimeoutMs: 20_000, maxAttempts });
  clients.push(client);
  await warmUp(client, [a, b]);
  return { a, b, client };
}

/** A raw grpc-js GetPolicy (the channel's retry policy applies, our layer does not). */
function rawGetPolicy(client: AgentServiceClient): Promise<PolicyVersion> {
  return new Promise((resolve, reject) => {
    client.getPolicy({ ref: { name: 'p', version: 0 } }, new Metadata(), { deadline: Date.now() + 20_000 }, (err: ServiceError | null, res: PolicyVersion) =>
      err ? reject(PurifyError.wrap(err, 'getPolicy failed')) : resolve(res),
    );
  });
}

describe('a replica force-closed under a call in flight', () => {
  it('unaryCall repeats an idempotent call on the other replica', async () => {
    const { a, b, client } = await agentPair();
    const { call } = await landOn(a, () => unaryCall(client, 'getPolicy', { ref: { name: 'p', version: 0 } }));
    await a.server.shutdown();
    expect((await call).ref).toEqual({ name: 'b', version: 1 });
    expect(await a.cut).toMatchObject({ code: ErrorCode.Cancelled });
    // The servers' own counts: a cut one call; b answered the calls that missed a, plus the repeat.
    expect(a.server.requestCounts()).toEqual({ GetInfo: { OK: expect.any(Number) }, GetPolicy: { CANCELLED: 1 } });
    expect(b.server.requestCounts()['GetPolicy']?.['OK']).toBeGreaterThanOrEqual(1);
  });

  it.each([
    // [case, how the call is made, the client's maxAttempts]; the caller sees CANCELLED
    ['grpc-js alone (retry policy on, no repeat of a reset stream)', (c: AgentServiceClient): Promise<unknown> => rawGetPolicy(c), 4],
    ['unaryCall with maxAttempts 1', (c: AgentServiceClient): Promise<unknown> => unaryCall(c, 'getPolicy', { ref: { name: 'p', version: 0 } }), 1],
    ['unaryCall of Act, which is not idempotent', (c: AgentServiceClient): Promise<unknown> => unaryCall(c, 'act', { routingKey: 'k', context: {}, deterministic: false }), 4],
  ] as const)('is not repeated: %s', async (_name, start, maxAttempts) => {
    const { a, b, client } = await agentPair(maxAttempts);
    const servedByB = (): number => Object.values(b.server.requestCounts()).reduce((n, byCode) => n + (byCode['OK'] ?? 0), 0);
    const { call } = await landOn(a, () => start(client));
    const beforeKill = servedByB();
    await a.server.shutdown();
    await expect(call).rejects.toMatchObject({ code: ErrorCode.Cancelled });
    expect(await a.cut).toMatchObject({ code: ErrorCode.Cancelled });
    // b never saw a repeat.
    expect(servedByB()).toBe(beforeKill);
  });

  it('a call the caller cancels is not repeated', async () => {
    const { a, b, client } = await agentPair();
    const controller = new AbortController();
    const before = b.server.requestCounts()['GetPolicy']?.['OK'] ?? 0;
    const { call } = await landOn(a, () => unaryCall(client, 'getPolicy', { ref: { name: 'p', version: 0 } }, { signal: controller.signal }));
    const afterLanding = b.server.requestCounts()['GetPolicy']?.['OK'] ?? 0;
    controller.abort();
    await expect(call).rejects.toMatchObject({ code: ErrorCode.Cancelled });
    await a.cut;
    expect(afterLanding).toBeGreaterThanOrEqual(before);
    expect(b.server.requestCounts()['GetPolicy']?.['OK'] ?? 0).toBe(afterLanding);
  });

  it('withReplicaRetry repeats a stream that was already committed (a message had arrived)', async () => {
    // Trainer-shaped replicas: WatchJob (idempotent, server streaming). a sends event 1 and holds; b sends events 1 and 2.
    const make = async (name: string, mode: 'answer' | 'hold'): Promise<Replica> => {
      const landed = deferred();
      const cut = deferred<unknown>();
      const server = await startServer({
        kind: 'trainer',
        settings,
        logger: quiet,
        definition: TrainerServiceService,
        implementation: (env: HandlerEnv) => ({
          watchJob: serverStream<WatchJobRequest, JobEvent>(env, 'WatchJob', async (req, send, ctx) => {
            await send({ jobId: req.jobId, sequence: 1, event: { $case: 'log', log: name } });
            if (mode === 'answer') return send({ jobId: req.jobId, sequence: 2, event: { $case: 'log', log: name } });
            landed.resolve();
            await aborted(ctx.signal);
            cut.resolve(ctx.signal.reason);
            throw ctx.signal.reason;
          }),
        }),
      });
      servers.push(server);
      return { name, server, landed: landed.promise, cut: cut.promise };
    };
    const a = await make('a', 'hold');
    const b = await make('b', 'answer');
    const client = createClient(TrainerServiceClient, 'trainer', { addresses: [a.server.address, b.server.address], defaultTimeoutMs: 20_000 });
    clients.push(client);
    await warmUp(client, [a, b]);

    const received: string[][] = [];
    const firstFromA = deferred();
    const watch = (deadline: number): Promise<JobEvent[]> =>
      new Promise((resolve, reject) => {
        const events: JobEvent[] = [];
        const seen: string[] = [];
        received.push(seen);
        const stream = client.watchJob({ jobId: 'j', fromSequence: 0 }, { deadline });
        stream.on('data', (e: JobEvent) => {
          events.push(e);
          seen.push(`${e.sequence}:${e.event?.$case === 'log' ? e.event.log : ''}`);
          if (seen.at(-1) === '1:a') firstFromA.resolve();
        });
        stream.on('error', (err: Error) => reject(PurifyError.wrap(err, 'watchJob failed')));
        stream.on('end', () => resolve(events));
      });
    const deadline = Date.now() + 20_000;
    const { call: job } = await landOn(a, () => withReplicaRetry(client, 'WatchJob', { deadline }, () => watch(deadline)));
    // The attempt on a has its first event: committed, so grpc-js would not repeat it.
    await firstFromA.promise;
    expect(received.at(-1)).toEqual(['1:a']);
    await a.server.shutdown();
    expect((await job).map((e) => `${e.sequence}:${e.event?.$case === 'log' ? e.event.log : ''}`)).toEqual(['1:b', '2:b']);
    expect(received.at(-2)).toEqual(['1:a']);
    expect(await a.cut).toMatchObject({ code: ErrorCode.Cancelled });
  });
});

describe('withReplicaRetry without a network', () => {
  const client = createClient(AgentServiceClient, 'agent', { addresses: ['127.0.0.1:9'], maxAttempts: 3 });
  afterAll(() => client.close());
  const unavailable = new PurifyError(ErrorCode.Unavailable, 'getPolicy failed: Connection dropped');

  it.each([
    // [case, client, rpc, error of every attempt, deadline from now (ms), attempts made]
    ['UNAVAILABLE on an idempotent RPC: up to maxAttempts (3)', client, 'GetPolicy', unavailable, 20_000, 3],
    ['not idempotent (Act): once', client, 'Act', unavailable, 20_000, 1],
    ['INVALID_ARGUMENT: once', client, 'GetPolicy', PurifyError.invalidArgument('`ref` is bad'), 20_000, 1],
    ['the first backoff (≥ 25 ms) would pass the deadline (10 ms): once', client, 'GetPolicy', unavailable, 10, 1],
    ['a client not made by createClient: once', {}, 'GetPolicy', unavailable, 20_000, 1],
  ] as const)('%s', async (_name, target, rpc, error, deadlineMs, attempts) => {
    let made = 0;
    const outcome = withReplicaRetry(target, rpc, { deadline: Date.now() + deadlineMs, initialBackoffMs: 50, maxBackoffMs: 50 }, () => {
      made++;
      return Promise.reject(error);
    });
    await expect(outcome).rejects.toBe(error);
    expect(made).toBe(attempts);
  });

  it('a repeat that runs out of time rejects with the replica failure that caused it', async () => {
    const late = new PurifyError(ErrorCode.DeadlineExceeded, 'getPolicy failed: Deadline exceeded after 0.5s, Waiting for LB pick');
    const outcome = withReplicaRetry(client, 'GetPolicy', { deadline: Date.now() + 20_000, initialBackoffMs: 1 }, (n) => Promise.reject(n === 1 ? unavailable : late));
    await expect(outcome).rejects.toBe(unavailable);
    // Without an earlier replica failure, DEADLINE_EXCEEDED is what the caller gets.
    await expect(withReplicaRetry(client, 'GetPolicy', { deadline: Date.now() + 20_000 }, () => Promise.reject(late))).rejects.toBe(late);
  });

  it('returns the first success', async () => {
    let made = 0;
    const out = await withReplicaRetry(client, 'GetPolicy', { deadline: Date.now() + 20_000, initialBackoffMs: 1 }, (n) => {
      made++;
      return n < 2 ? Promise.reject(unavailable) : Promise.resolve(`attempt ${n}`);
    });
    expect([out, made]).toEqual(['attempt 2', 2]);
  });

  it.each([
    // [error, cancelled by the caller, retryable]
    [new PurifyError(ErrorCode.Unavailable, 'x: Connection dropped'), false, true],
    [new PurifyError(ErrorCode.Unavailable, 'x: Connection dropped'), true, false],
    [new PurifyError(ErrorCode.Unavailable, 'x: round_robin: No connection established. Last error: connect ECONNREFUSED'), false, false],
    [new PurifyError(ErrorCode.Unavailable, 'x: Stream refused by server'), false, true],
    [new PurifyError(ErrorCode.Cancelled, 'x: Call cancelled'), false, true],
    [new PurifyError(ErrorCode.Cancelled, 'x: Call cancelled'), true, false],
    [new PurifyError(ErrorCode.Cancelled, 'x: Cancelled on client'), false, false],
    [new PurifyError(ErrorCode.DeadlineExceeded, 'x: Deadline exceeded'), false, false],
    [new PurifyError(ErrorCode.Internal, 'x: boom'), false, false],
  ])('isReplicaFailure(%s, cancelled by caller %s) = %s', (err, byCaller, expected) => {
    expect(isReplicaFailure(err, byCaller)).toBe(expected);
  });
});
