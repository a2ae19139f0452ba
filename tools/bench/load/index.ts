/**
 * Load test of a scaled-out segmenter (issue #8): S segmenter replicas as
 * separate processes (started as `purify up` starts a service), one
 * round-robin client over all of them, N concurrent `Segment` calls for T
 * seconds. Reports throughput (calls/s, voxels/s), p50/p99 latency, errors,
 * the split of calls per replica (each replica's own
 * `purify_rpc_server_requests_total`), and per process the RSS at the start
 * and end of the measured window and the peak RSS (VmHWM) — memory should stay
 * flat. `--kill-after S` SIGKILLs the last replica S seconds into the window:
 * its calls in flight are repeated on the others (idempotent Segment, within
 * the deadline), so the error count should stay 0.
 *
 *   npx tsx --conditions=@purify/source tools/bench/load/index.ts [--replicas 3] [--concurrency 8] [--duration 30]
 *     [--warmup 5] [--slices 8] [--size 128] [--threads 1] [--kill-after S] [--json FILE] [--help]
 *
 * The model is the reference U-Net (`REFERENCE_UNET`, BatchNorm folded at
 * export) with its seeded initial weights, exported to ONNX at `--size`²; each
 * call segments an int16 CT-like volume [slices, size, size] at the model's
 * tile size with overlap 0 (one tile per slice). One LoadModel goes through the
 * round-robin client; the other replicas load the version from the shared
 * registry at their first call, during the warm-up (never measured).
 * Prints a markdown report; writes the figures as JSON (default
 * runs/bench/load-<time>.json).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { ModelRegistry } from '@purify/artifacts';
import { makeVolume } from '@purify/imaging';
import { providerAvailability, segmentRemote } from '@purify/inference';
import { buildUNet, exportOnnx, ONNX_INPUT_NAME, ONNX_OPSET, ONNX_OUTPUT_NAME, REFERENCE_UNET } from '@purify/models';
import { SegmenterServiceClient, type ModelRef } from '@purify/proto';
import { createClient, unaryCall } from '@purify/runtime';
import { memoryOf, requestCounts, startReplica, stopReplica, type Replica } from './replicas';

const HELP = `Load test of S segmenter processes behind one round-robin client.

  npx tsx --conditions=@purify/source tools/bench/load/index.ts [options]

  --replicas S      segmenter processes (default 3)
  --concurrency N   Segment calls in flight (default 8)
  --duration T      measured seconds (default 30)
  --warmup W        unmeasured seconds before (default 5)
  --slices Z        slices per call: int16 volume [Z, size, size] (default 8)
  --size P          in-plane size = model tile (default 128)
  --threads K       onnxruntime intra-op threads per replica (default 1)
  --kill-after S    SIGKILL the last replica S seconds into the measured window
  --json FILE       where the figures go (default runs/bench/load-<time>.json)
  --help            this text
`;

interface Args {
  replicas: number;
  concurrency: number;
  durationS: number;
  warmupS: number;
  slices: number;
  size: number;
  threads: number;
  killAfterS: number | undefined;
  json: string;
}

function parse(): Args {
  const { values } = parseArgs({
    options: {
      replicas: { type: 'string', default: '3' },
      concurrency: { type: 'string', default: '8' },
      duration: { type: 'string', default: '30' },
      warmup: { type: 'string', default: '5' },
      slices: { type: 'string', default: '8' },
      size: { type: 'string', default: '128' },
      threads: { type: 'string', default: '1' },
      'kill-after': { type: 'string' },
      json: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  const num = (name: string, v: string | undefined, min: number, integer = true): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) throw new Error(`--${name} must be ${integer ? 'an integer' : 'a number'} ≥ ${min}, got ${v}`);
    return n;
  };
  const durationS = num('duration', values.duration, 1, false);
  const killAfterS = values['kill-after'] === undefined ? undefined : num('kill-after', values['kill-after'], 0, false);
  const replicas = num('replicas', values.replicas, 1);
  if (killAfterS !== undefined && (killAfterS >= durationS || replicas < 2)) {
    throw new Error(`--kill-after must be below --duration (${durationS}) and needs at least 2 replicas, got ${killAfterS} with ${replicas}`);
  }
  const size = num('size', values.size, 16);
  if (size % 8 !== 0) throw new Error(`--size must be a multiple of 8 (the reference U-Net pools 3 times), got ${size}`);
  return {
    replicas,
    concurrency: num('concurrency', values.concurrency, 1),
    durationS,
    warmupS: num('warmup', values.warmup, 0, false),
    slices: num('slices', values.slices, 1),
    size,
    threads: num('threads', values.threads, 1),
    killAfterS,
    json: resolve(values.json ?? join('runs', 'bench', `load-${new Date().toISOString().replace(/[:.]/g, '-')}.json`)),
  };
}

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

const MIB = 1024 * 1024;

interface MemoryTrack {
  readonly label: string;
  readonly pid: number;
  startBytes?: number;
  endBytes?: number;
  maxSampledBytes: number;
  peakBytes?: number;
}

async function publishModel(root: string, size: number): Promise<{ ref: ModelRef; params: number }> {
  tf.env().set('IS_TEST', true);
  await tf.setBackend('cpu');
  await tf.ready();
  const model = buildUNet(REFERENCE_UNET);
  try {
    const v = new ModelRegistry(root).publish('bench', { onnx: exportOnnx(model) }, {
      classes: ['background', 'liver', 'spleen', 'kidney_r', 'kidney_l'].map((name, index) => ({ index, name })),
      inputChannels: 1,
      inputSizeYx: [size, size],
      normalization: { kind: 'ct-window', lowHu: -160, highHu: 240 },
      onnx: { input: ONNX_INPUT_NAME, output: ONNX_OUTPUT_NAME, opset: ONNX_OPSET },
      provenance: { bench: 'load' },
      metrics: [],
    });
    return { ref: { name: 'bench', version: v.meta.version }, params: model.numParams };
  } finally {
    model.dispose();
  }
}

async function main(): Promise<void> {
  const args = parse();
  const command = `npx tsx --conditions=@purify/source tools/bench/load/index.ts ${process.argv.slice(2).join(' ')}`.trim();
  const root = mkdtempSync(join(tmpdir(), 'bench-load-'));
  const replicas: Replica[] = [];
  let client: SegmenterServiceClient | undefined;
  try {
    const { ref, params } = await publishModel(root, args.size);
    process.stderr.write(`starting ${args.replicas} segmenter processes …\n`);
    replicas.push(...(await Promise.all(Array.from({ length: args.replicas }, (_, i) => startReplica(i, root, args.threads)))));
    client = createClient(SegmenterServiceClient, 'segmenter', { addresses: replicas.map((r) => r.address), defaultTimeoutMs: 120_000 });
    // One LoadModel, as a caller would: it reaches one replica; the others load on their first call.
    await unaryCall(client, 'loadModel', { ref });

    const [nz, n] = [args.slices, args.size];
    const volume = makeVolume(Int16Array.from({ length: nz * n * n }, (_, i) => Math.round(300 * Math.sin(i * 0.001) + 80 * Math.cos(i * 0.37))), [nz, n, n]);
    const voxelsPerCall = nz * n * n;
    const callTimeoutMs = 120_000;
    const c = client;

    let measuring = false;
    let outstanding = 0;
    const latencies: number[] = [];
    const errors = new Map<string, number>();
    const completedAt: number[] = [];
    let windowStart = 0;
    const loop = async (until: () => boolean): Promise<void> => {
      while (!until()) {
        const counted = measuring;
        const t0 = performance.now();
        outstanding++;
        try {
          await segmentRemote(c, volume, { model: ref, overlap: 0, timeoutMs: callTimeoutMs });
          if (counted) {
            latencies.push(performance.now() - t0);
            completedAt.push(performance.now() - windowStart);
          }
        } catch (err) {
          const key = `${(err as { code?: string }).code ?? 'ERROR'}: ${(err as Error).message}`;
          if (counted) errors.set(key, (errors.get(key) ?? 0) + 1);
          else process.stderr.write(`warm-up call failed: ${key}\n`);
        } finally {
          outstanding--;
        }
      }
    };

    // Warm-up: until W seconds passed and every replica has served a Segment (bounded).
    process.stderr.write(`warm-up (${args.warmupS} s) …\n`);
    const warmEnd = performance.now() + args.warmupS * 1000;
    const warmLimit = performance.now() + (args.warmupS + 120) * 1000;
    let warm = false;
    const warmWorkers = Array.from({ length: args.concurrency }, () => loop(() => warm));
    while (!warm) {
      await new Promise((r) => setTimeout(r, 500));
      if (performance.now() < warmEnd) continue;
      const counts = await Promise.all(replicas.map(requestCounts));
      if (counts.every((k) => (k['Segment']?.['OK'] ?? 0) > 0)) warm = true;
      else if (performance.now() > warmLimit) throw new Error(`not every replica served a Segment call during the warm-up: ${JSON.stringify(counts.map((k) => k['Segment'] ?? {}))}`);
    }
    await Promise.all(warmWorkers);

    // Measured window.
    const tracks: MemoryTrack[] = [
      ...replicas.map((r) => ({ label: `segmenter ${r.index} (${r.address})`, pid: r.pid, maxSampledBytes: 0 })),
      { label: 'load client (this process)', pid: process.pid, maxSampledBytes: 0 },
    ];
    const sample = (): void => {
      for (const t of tracks) {
        const m = memoryOf(t.pid);
        if (!m) continue;
        t.startBytes ??= m.rssBytes;
        t.endBytes = m.rssBytes;
        t.maxSampledBytes = Math.max(t.maxSampledBytes, m.rssBytes);
        t.peakBytes = m.peakRssBytes;
      }
    };
    const countsAtStart = await Promise.all(replicas.map(requestCounts));
    const lastCounts = [...countsAtStart];
    const pollCounts = async (): Promise<void> => {
      await Promise.all(
        replicas.map(async (r, i) => {
          if (r.child.exitCode !== null || r.child.signalCode !== null || (kill && kill.replica === r.index)) return;
          lastCounts[i] = await requestCounts(r).catch(() => lastCounts[i] as Record<string, Record<string, number>>);
        }),
      );
    };
    sample();
    measuring = true;
    windowStart = performance.now();
    const windowEnd = windowStart + args.durationS * 1000;
    const sampler = setInterval(sample, 250);
    const poller = setInterval(() => void pollCounts(), 1000);
    let kill: { atS: number; replica: number; inFlight: number; rssBeforeBytes: number | undefined } | undefined;
    const killTimer =
      args.killAfterS === undefined
        ? undefined
        : setTimeout(() => {
            const victim = replicas[replicas.length - 1] as Replica;
            // Its own count just before it dies (it cannot be asked after).
            void requestCounts(victim)
              .then((counts) => (lastCounts[victim.index] = counts))
              .catch(() => undefined)
              .then(() => {
                sample();
                kill = { atS: (performance.now() - windowStart) / 1000, replica: victim.index, inFlight: outstanding, rssBeforeBytes: memoryOf(victim.pid)?.rssBytes };
                victim.child.kill('SIGKILL');
                process.stderr.write(`killed segmenter ${victim.index} (pid ${victim.pid}) at ${kill.atS.toFixed(1)} s with ${kill.inFlight} calls in flight\n`);
              });
          }, args.killAfterS * 1000);
    process.stderr.write(`measuring ${args.durationS} s, ${args.concurrency} calls in flight …\n`);
    await Promise.all(Array.from({ length: args.concurrency }, () => loop(() => performance.now() >= windowEnd)));
    const elapsedS = (performance.now() - windowStart) / 1000;
    measuring = false;
    clearInterval(sampler);
    clearInterval(poller);
    if (killTimer) clearTimeout(killTimer);
    sample();
    await pollCounts();

    // Figures.
    const sorted = [...latencies].sort((x, y) => x - y);
    const calls = latencies.length;
    const errorCount = [...errors.values()].reduce((a, b) => a + b, 0);
    const served = replicas.map((_, i) => (lastCounts[i]?.['Segment']?.['OK'] ?? 0) - (countsAtStart[i]?.['Segment']?.['OK'] ?? 0));
    const failedOnReplicas = replicas.map((_, i) =>
      Object.entries(lastCounts[i]?.['Segment'] ?? {}).reduce((s, [code, k]) => s + (code === 'OK' ? 0 : k - (countsAtStart[i]?.['Segment']?.[code] ?? 0)), 0),
    );
    const perSecond = Array.from({ length: Math.ceil(elapsedS) }, (_, s) => completedAt.filter((t) => t >= s * 1000 && t < (s + 1) * 1000).length);
    const summary = {
      date: new Date().toISOString(),
      command,
      machine: { cpu: cpus()[0]?.model ?? 'unknown', logicalCpus: cpus().length, node: process.version, onnxruntime: providerAvailability().onnxruntimeVersion },
      model: { architecture: 'reference U-Net', params, tile: [args.size, args.size], onnx: true },
      config: { replicas: args.replicas, concurrency: args.concurrency, durationS: args.durationS, warmupS: args.warmupS, slices: args.slices, size: args.size, threads: args.threads, killAfterS: args.killAfterS ?? null },
      call: { shapeZyx: [nz, n, n], dtype: 'int16', voxels: voxelsPerCall, overlap: 0 },
      measuredS: elapsedS,
      calls,
      callsPerS: calls / elapsedS,
      voxelsPerS: (calls * voxelsPerCall) / elapsedS,
      latencyMs: { p50: percentile(sorted, 50), p90: percentile(sorted, 90), p99: percentile(sorted, 99), max: sorted.at(-1) ?? NaN },
      errors: errorCount,
      errorKinds: Object.fromEntries(errors),
      kill: kill ?? null,
      perReplica: replicas.map((r, i) => ({ index: r.index, pid: r.pid, address: r.address, segmentCalls: served[i], failedCalls: failedOnReplicas[i] })),
      memory: tracks.map((t) => ({ process: t.label, pid: t.pid, rssStartMiB: (t.startBytes ?? NaN) / MIB, rssEndMiB: (t.endBytes ?? NaN) / MIB, rssMaxSampledMiB: t.maxSampledBytes / MIB, peakRssMiB: (t.peakBytes ?? NaN) / MIB })),
      callsPerSecond: perSecond,
    };
    mkdirSync(dirname(args.json), { recursive: true });
    writeFileSync(args.json, `${JSON.stringify(summary, null, 2)}\n`);

    const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : '—');
    const totalServed = served.reduce((a, b) => a + b, 0);
    const lines = [
      `# segmenter load test — ${summary.date}`,
      '',
      `command: \`${command}\``,
      `machine: ${summary.machine.cpu} (${summary.machine.logicalCpus} logical cpus), node ${process.version}, onnxruntime-node ${summary.machine.onnxruntime}`,
      `model: reference U-Net (${params} params) exported to ONNX at ${n}×${n}; each call: int16 volume [${nz}, ${n}, ${n}] = ${voxelsPerCall} voxels, overlap 0 (${nz} tiles); ${args.threads} onnxruntime thread(s) per replica`,
      '',
      '| replicas | calls in flight | measured s | calls | calls/s | voxels/s | p50 ms | p99 ms | errors | replica killed |',
      '|---|---|---|---|---|---|---|---|---|---|',
      `| ${args.replicas} | ${args.concurrency} | ${elapsedS.toFixed(1)} | ${calls} | ${summary.callsPerS.toFixed(2)} | ${(summary.voxelsPerS / 1e6).toFixed(2)} M | ${f1(summary.latencyMs.p50)} | ${f1(summary.latencyMs.p99)} | ${errorCount} | ${kill ? `#${kill.replica} at ${kill.atS.toFixed(1)} s (${kill.inFlight} calls in flight)` : 'none'} |`,
      '',
      '| process | Segment calls served (share) | RSS at start MiB | RSS at end MiB | max sampled RSS MiB | peak RSS (VmHWM) MiB |',
      '|---|---|---|---|---|---|',
      ...tracks.map((t, i) => {
        const s = served[i];
        const share = s === undefined ? '—' : `${s} (${totalServed > 0 ? ((100 * s) / totalServed).toFixed(0) : '0'} %)${kill?.replica === i ? ', killed' : ''}`;
        return `| ${t.label} | ${share} | ${f1((t.startBytes ?? NaN) / MIB)} | ${f1((t.endBytes ?? NaN) / MIB)} | ${f1(t.maxSampledBytes / MIB)} | ${f1((t.peakBytes ?? NaN) / MIB)} |`;
      }),
      '',
      `calls completed per second: ${perSecond.join(' ')}`,
      ...(errorCount > 0 ? ['', 'errors:', ...[...errors].map(([k, v]) => `- ${v} × ${k}`)] : []),
      '',
      `figures: ${args.json}`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    client?.close();
    await Promise.all(replicas.map((r) => stopReplica(r)));
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
