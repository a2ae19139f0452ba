// Integration: the real `purify` command starts the four real service processes,
// they answer health and reflection, and every way of stopping the launcher
// leaves no process behind.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SERVICE_NAMES, type ServiceKind } from '@purify/proto';
import { checkHealth, listServices } from '@purify/runtime';
import type { ServicesFile } from '../src/services-file';

const BIN = join(__dirname, '..', 'bin', 'purify.js');
const KINDS = Object.keys(SERVICE_NAMES) as ServiceKind[];

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until<T>(what: string, timeoutMs: number, probe: () => T | undefined): Promise<T> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const value = probe();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });
}

/** Starts `purify up` on free ports and waits for its services file. */
async function up(): Promise<{ launcher: ChildProcess; file: ServicesFile; runDir: string; stderr: () => string }> {
  const runDir = mkdtempSync(join(tmpdir(), 'purify-up-'));
  let stderr = '';
  const launcher = spawn(process.execPath, [BIN, 'up', '--free-ports', '--run-dir', runDir, '--artifacts-dir', join(runDir, 'artifacts'), '--shutdown-grace-ms', '2000'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  launcher.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  launcher.stdout?.on('data', () => undefined);
  const file = await until('services.json', 60_000, () => {
    if (launcher.exitCode !== null) throw new Error(`purify up exited early:\n${stderr}`);
    const path = join(runDir, 'services.json');
    return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as ServicesFile) : undefined;
  });
  return { launcher, file, runDir, stderr: () => stderr };
}

describe('purify up', () => {
  let running: ChildProcess | undefined;
  afterEach(() => {
    if (running && running.exitCode === null) running.kill('SIGKILL');
  });

  it('starts all four services, which serve health and reflection; SIGTERM stops them all', async () => {
    const { launcher, file, runDir, stderr } = await up();
    running = launcher;
    expect(file.services.map((s) => s.kind).sort()).toEqual([...KINDS].sort());
    for (const s of file.services) {
      expect(await checkHealth(s.address)).toBe('SERVING');
      expect(await listServices(s.address)).toEqual(expect.arrayContaining([SERVICE_NAMES[s.kind], 'grpc.health.v1.Health']));
    }

    const status = spawnSync(process.execPath, [BIN, 'status', '--run-dir', runDir, '--json'], { encoding: 'utf8' });
    expect(status.status).toBe(0);
    const rows = (JSON.parse(status.stdout) as { services: { kind: string; health: string; version: string }[] }).services;
    expect(rows.map((r) => [r.kind, r.health])).toEqual(file.services.map((s) => [s.kind, 'SERVING']));

    const t0 = Date.now();
    launcher.kill('SIGTERM');
    expect(await exited(launcher)).toBe(0);
    expect(Date.now() - t0).toBeLessThan(15_000);
    for (const s of file.services) expect(alive(s.pid)).toBe(false);
    expect(existsSync(join(runDir, 'services.json'))).toBe(false);
    expect(stderr()).toContain('all services stopped');
  });

  it('leaves no orphans when the launcher is killed outright', async () => {
    const { launcher, file } = await up();
    running = launcher;
    launcher.kill('SIGKILL');
    await exited(launcher);
    await until('every service to exit', 20_000, () => (file.services.every((s) => !alive(s.pid)) ? true : undefined));
  });

  it('status reports an unreachable service and fails', () => {
    const status = spawnSync(process.execPath, [BIN, 'status', '--segmenter', '127.0.0.1:1', '--timeout-ms', '500'], { encoding: 'utf8' });
    expect(status.status).toBe(1);
    expect(status.stdout).toMatch(/segmenter\s+127\.0\.0\.1:1\s+UNREACHABLE/);
  });

  it('refuses a bad port naming the option and the value', () => {
    const result = spawnSync(process.execPath, [BIN, 'up', '--segmenter-port', '70000'], { encoding: 'utf8' });
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain("option '--segmenter-port <port>' argument '70000' is invalid. must be an integer in [0, 65535], got \"70000\"");
  });
});

describe('service processes refuse bad configuration at start', () => {
  const aFile = join(mkdtempSync(join(tmpdir(), 'purify-cfg-')), 'file');
  require('node:fs').writeFileSync(aFile, 'x');

  it.each([
    // [service, flags, exact one-line stderr]
    ['segmenter', ['--port', '70000'], 'purify-segmenter: invalid --port (from flag --port): must be an integer in [0, 65535], got "70000"'],
    ['reliability', ['--segmenter-adresses', 'x'], /^purify-reliability: unknown flag --segmenter-adresses \(known: --host, --port, .*--segmenter-addresses, .*--help\)$/],
    ['agent', ['--artifacts-dir', aFile], `purify-agent: invalid --artifacts-dir (from flag --artifacts-dir): must be a directory (it is a file), got ${JSON.stringify(aFile)}`],
    ['trainer', ['--agent-addresses', 'nohost'], 'purify-trainer: invalid --agent-addresses (from flag --agent-addresses): must be host:port, got "nohost"'],
  ] as [ServiceKind, string[], string | RegExp][])('%s %p', (kind, flags, message) => {
    const entry = require.resolve(`@purify/${kind}-service/main`);
    const tsx = require('node:url').pathToFileURL(require.resolve('tsx')).href as string;
    const result = spawnSync(process.execPath, [`--import=${tsx}`, '--conditions=@purify/source', entry, ...flags], { encoding: 'utf8' });
    expect(result.status).toBe(2);
    if (typeof message === 'string') expect(result.stderr.trimEnd()).toBe(message);
    else expect(result.stderr.trimEnd()).toMatch(message);
  });
});
