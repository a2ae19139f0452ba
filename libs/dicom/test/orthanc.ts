/**
 * Test helper: a real Orthanc (Debian's `orthanc` + `orthanc-dicomweb`) in a
 * network namespace of its own, reachable from the test process only through a
 * bridge.
 *
 * Why a namespace: Orthanc 1.10 cannot bind to loopback only (it listens on all
 * interfaces); inside `unshare -n` the only interface is that namespace's own
 * `lo`, so nothing outside can reach it.
 *
 * How the test reaches it (root in CI): Orthanc runs as
 *   unshare -n sh -c 'ip link set lo up && exec Orthanc config.json'
 * and a tiny relay runs in the same namespace (`nsenter --net=/proc/<pid>/ns/net
 * node relay.js`), forwarding connections from a Unix socket in a private
 * temporary folder (0700; the file system is shared across network namespaces)
 * to 127.0.0.1:8042 inside the namespace. The jest process listens on
 * 127.0.0.1:<free port> of the host namespace and pipes each connection to that
 * socket. So every HTTP request of the test — and of the pipeline under test,
 * which runs in-process with its fake segment function — is made inside the
 * namespace by the relay, and Orthanc's port is never open on a host interface.
 *
 * `startOrthanc` throws (failing the test, never skipping it) with the reason
 * when a binary is missing, the namespace cannot be made, or Orthanc does not
 * answer within the start timeout (the end of its log is in the message).
 * `stop()` stops the relay and Orthanc (SIGTERM, then SIGKILL after 5 s) by pid
 * and deletes the storage.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ORTHANC_BINARY = '/usr/sbin/Orthanc';
export const DICOMWEB_PLUGIN = '/usr/share/orthanc/plugins/libOrthancDicomWeb.so';
const ORTHANC_PORT = 8042;

export interface OrthancHandle {
  /** Orthanc's REST root as the test sees it: http://127.0.0.1:<bridge port>. */
  readonly url: string;
  /** The DICOMweb root: `${url}/dicom-web`. */
  readonly dicomWebUrl: string;
  /** PID of Orthanc (inside the namespace). */
  readonly pid: number;
  /** Orthanc's log so far. */
  log(): string;
  stop(): Promise<void>;
}

const RELAY = `
const net = require('node:net');
const [socketPath, port] = process.argv.slice(2);
net.createServer((client) => {
  const upstream = net.connect(Number(port), '127.0.0.1');
  client.pipe(upstream).pipe(client);
  const close = () => { client.destroy(); upstream.destroy(); };
  client.on('error', close);
  upstream.on('error', close);
}).listen(socketPath, () => process.stdout.write('ready\\n'));
process.on('SIGTERM', () => process.exit(0));
`;

function which(binary: string): boolean {
  return ['/usr/bin', '/usr/sbin', '/bin', '/sbin'].some((dir) => existsSync(join(dir, binary)));
}

function waitExit(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

/** Starts Orthanc (StableAge 1 s, DICOM port off) and waits until it answers /system. */
export async function startOrthanc(options: { startTimeoutMs?: number } = {}): Promise<OrthancHandle> {
  const missing = [ORTHANC_BINARY, DICOMWEB_PLUGIN].filter((p) => !existsSync(p));
  for (const b of ['unshare', 'nsenter', 'ip']) if (!which(b)) missing.push(b);
  if (missing.length > 0) throw new Error(`cannot start Orthanc: missing ${missing.join(', ')} (install the Debian packages orthanc, orthanc-dicomweb, util-linux, iproute2)`);

  const dir = mkdtempSync(join(tmpdir(), 'purify-orthanc-'));
  const storage = join(dir, 'db');
  const socketPath = join(dir, 'orthanc.sock');
  const config = {
    Name: 'purify-test',
    StorageDirectory: storage,
    IndexDirectory: storage,
    Plugins: [DICOMWEB_PLUGIN],
    HttpPort: ORTHANC_PORT,
    HttpCompressionEnabled: false,
    RemoteAccessAllowed: false,
    AuthenticationEnabled: false,
    DicomServerEnabled: false,
    StableAge: 1,
    OverwriteInstances: false,
    DicomWeb: { Enable: true, Root: '/dicom-web/', EnableWado: true, Ssl: false, Host: `127.0.0.1:${ORTHANC_PORT}`, StudiesMetadata: 'Full', SeriesMetadata: 'Full' },
  };
  writeFileSync(join(dir, 'orthanc.json'), JSON.stringify(config, null, 2));
  writeFileSync(join(dir, 'relay.js'), RELAY);

  let orthancLog = '';
  const orthanc = spawn('unshare', ['--net', '--', 'sh', '-c', `ip link set lo up && exec ${ORTHANC_BINARY} "$0"`, join(dir, 'orthanc.json')], { stdio: ['ignore', 'pipe', 'pipe'] });
  orthanc.stdout?.on('data', (b: Buffer) => (orthancLog += b.toString()));
  orthanc.stderr?.on('data', (b: Buffer) => (orthancLog += b.toString()));
  let relay: ChildProcess | undefined;
  let bridge: Server | undefined;
  // Open bridge connections: fetch keeps sockets alive, and server.close() waits
  // for every connection, so stop() destroys them.
  const sockets = new Set<Socket>();
  const killAll = (): void => {
    relay?.kill('SIGKILL');
    orthanc.kill('SIGKILL');
  };
  process.once('exit', killAll);

  const stop = async (): Promise<void> => {
    process.removeListener('exit', killAll);
    const closed = new Promise<void>((resolve) => (bridge ? bridge.close(() => resolve()) : resolve()));
    for (const socket of sockets) socket.destroy();
    await closed;
    if (relay) {
      relay.kill('SIGTERM');
      await waitExit(relay, 5000);
    }
    orthanc.kill('SIGTERM');
    await waitExit(orthanc, 5000);
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    const pid = orthanc.pid;
    if (pid === undefined) throw new Error('cannot start Orthanc: spawn of unshare failed');
    const deadline = Date.now() + (options.startTimeoutMs ?? 20_000);
    const exited = (): string | undefined => (orthanc.exitCode !== null || orthanc.signalCode !== null ? `Orthanc exited (code ${orthanc.exitCode}, signal ${orthanc.signalCode})` : undefined);

    // The relay must join Orthanc's namespace, which exists only once unshare has
    // made it: until then /proc/<pid>/ns/net is still the host's, and a relay
    // started that early would forward to a port nobody listens on.
    const hostNetNs = readlinkSync('/proc/self/ns/net');
    for (;;) {
      const dead = exited();
      if (dead) throw new Error(`cannot start Orthanc: ${dead}; log:\n${orthancLog.slice(-2000)}`);
      let ns: string | undefined;
      try {
        ns = readlinkSync(`/proc/${pid}/ns/net`);
      } catch {
        // the process is gone; exited() says so on the next turn
      }
      if (ns !== undefined && ns !== hostNetNs) break;
      if (Date.now() > deadline) throw new Error(`cannot start Orthanc: unshare made no network namespace within ${options.startTimeoutMs ?? 20_000} ms`);
      await new Promise((r) => setTimeout(r, 10));
    }
    relay = spawn('nsenter', [`--net=/proc/${pid}/ns/net`, process.execPath, join(dir, 'relay.js'), socketPath, String(ORTHANC_PORT)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let relayErr = '';
    relay.stderr?.on('data', (b: Buffer) => (relayErr += b.toString()));
    await new Promise<void>((resolve, reject) => {
      relay?.stdout?.once('data', () => resolve());
      relay?.once('exit', (code) => reject(new Error(`cannot start Orthanc: the relay into its network namespace exited with ${code}: ${relayErr.trim()}`)));
    });

    bridge = createServer((client) => {
      sockets.add(client);
      client.once('close', () => sockets.delete(client));
      const upstream = createConnection(socketPath);
      sockets.add(upstream);
      upstream.once('close', () => sockets.delete(upstream));
      client.pipe(upstream).pipe(client);
      const close = (): void => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', close);
      upstream.on('error', close);
    });
    const port = await new Promise<number>((resolve) => bridge?.listen(0, '127.0.0.1', () => resolve((bridge?.address() as { port: number }).port)));
    const url = `http://127.0.0.1:${port}`;

    for (;;) {
      const dead = exited();
      if (dead) throw new Error(`cannot start Orthanc: ${dead}; log:\n${orthancLog.slice(-2000)}`);
      try {
        const res = await fetch(`${url}/system`, { signal: AbortSignal.timeout(1000) });
        if (res.ok) {
          await res.arrayBuffer();
          break;
        }
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) throw new Error(`cannot start Orthanc: no answer on /system within ${options.startTimeoutMs ?? 20_000} ms; log:\n${orthancLog.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return { url, dicomWebUrl: `${url}/dicom-web`, pid, log: () => orthancLog, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Reads a file of Debian's python3-pydicom test data. */
export const PYDICOM_TEST_FILES = '/usr/lib/python3/dist-packages/pydicom/data/test_files';
export function pydicomFile(name: string): Uint8Array {
  const path = join(PYDICOM_TEST_FILES, name);
  if (!existsSync(path)) throw new Error(`${path} is missing (install the Debian package python3-pydicom)`);
  return new Uint8Array(readFileSync(path));
}
