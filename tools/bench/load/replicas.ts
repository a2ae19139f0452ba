/**
 * Segmenter replicas as separate processes, started the way `purify up` starts
 * a service (its `main` entry, through tsx from the sources), each with its own
 * Prometheus endpoint; their memory from /proc and their request counts from
 * their own metrics.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { get } from 'node:http';
import { pathToFileURL } from 'node:url';
import { freeLoopbackPort, type ReadyMessage } from '@purify/runtime';

export interface Replica {
  readonly index: number;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly address: string;
  readonly metricsUrl: string;
}

/** File and node flags of a service's entry point, as the CLI launcher resolves them. */
function segmenterEntry(): { file: string; nodeArgs: string[] } {
  const file = require.resolve('@purify/segmenter-service/main');
  if (!file.endsWith('.ts')) return { file, nodeArgs: [] };
  return { file, nodeArgs: [`--import=${pathToFileURL(require.resolve('tsx')).href}`, '--conditions=@purify/source'] };
}


/** Starts one segmenter on loopback (gRPC port 0, a free metrics port) and resolves once it reports ready. */
export async function startReplica(index: number, artifactsDir: string, threads: number, readyTimeoutMs = 120_000): Promise<Replica> {
  const { file, nodeArgs } = segmenterEntry();
  const metricsPort = await freeLoopbackPort();
  const args = [
    ...nodeArgs,
    file,
    '--host', '127.0.0.1',
    '--port', '0',
    '--artifacts-dir', artifactsDir,
    '--log-level', 'warn',
    '--intra-op-threads', String(threads),
    '--inter-op-threads', '1',
    '--metrics-port', String(metricsPort),
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], detached: false });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise<Replica>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`segmenter ${index} did not start within ${readyTimeoutMs} ms: ${stderr}`)), readyTimeoutMs);
    child.on('message', (m: ReadyMessage) => {
      if (m.type !== 'purify.ready') return;
      clearTimeout(timer);
      resolve({ index, child, pid: m.pid, address: m.address, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics` });
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`segmenter ${index} exited during start (${code ?? signal}): ${stderr}`));
    });
  });
}

/** SIGTERM (drain) and wait; SIGKILL after `graceMs` more. */
export async function stopReplica(r: Replica, graceMs = 15_000): Promise<void> {
  if (r.child.exitCode !== null || r.child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => r.child.once('exit', () => resolve()));
  r.child.kill('SIGTERM');
  const timer = setTimeout(() => r.child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** VmRSS and VmHWM (peak RSS) of a process, bytes; undefined once it is gone. */
export function memoryOf(pid: number): { rssBytes: number; peakRssBytes: number } | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rssBytes: kib('VmRSS'), peakRssBytes: kib('VmHWM') };
}

function scrape(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

/** A replica's own count of answered calls: `purify_rpc_server_requests_total` by method and status. */
export async function requestCounts(r: Replica): Promise<Record<string, Record<string, number>>> {
  const out: Record<string, Record<string, number>> = {};
  for (const line of (await scrape(r.metricsUrl)).split('\n')) {
    if (!line.startsWith('purify_rpc_server_requests_total{')) continue;
    const method = /rpc_method="([^"]+)"/.exec(line)?.[1];
    const status = /rpc_grpc_status="([^"]+)"/.exec(line)?.[1];
    if (method && status) (out[method] ??= {})[status] = Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return out;
}
