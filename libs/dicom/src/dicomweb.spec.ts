import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { DicomWebClient } from './dicomweb';
import { DicomError } from './errors';
import { buildMultipart, parseMultipart } from './multipart';
import { runStudy, watch } from './pipeline';
import { expectRejection } from '../test/expect-error';
import { makeVolume } from '@purify/imaging';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A local HTTP server answering with `handler`; resolves its base URL. */
async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; server: Server }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, server };
}
const servers: Server[] = [];
afterAll(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

/** A port nothing listens on: bind one, note it, close it. */
async function closedPort(): Promise<number> {
  const { server } = await serve(() => undefined);
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

describe('multipart/related', () => {
  it('round-trips parts whose bytes contain CRLF and dashes', () => {
    // Two parts: [0x0d, 0x0a, 0x2d, 0x2d, 0x41] and [] → parsed back identical, with their Content-Type.
    const files = [Uint8Array.from([13, 10, 45, 45, 65]), new Uint8Array(0)];
    const { body, contentType } = buildMultipart(files);
    const boundary = /boundary=(\S+)/.exec(contentType)?.[1] as string;
    const parts = parseMultipart(body, boundary, 'test');
    expect(parts.map((p) => [Array.from(p.body), p.headers['content-type']])).toEqual([
      [[13, 10, 45, 45, 65], 'application/dicom'],
      [[], 'application/dicom'],
    ]);
  });

  it('a truncated body is a protocol error', () => {
    const body = new Uint8Array(Buffer.from('--b\r\nContent-Type: application/dicom\r\n\r\nabc'));
    expect(() => parseMultipart(body, 'b', 'GET x')).toThrow(new DicomError('protocol', 'GET x: truncated multipart body (no closing boundary)'));
  });
});

describe('DicomWebClient failures', () => {
  it('PACS down: names the URL and the connection error', async () => {
    const port = await closedPort();
    const client = new DicomWebClient(`http://127.0.0.1:${port}/dicom-web`);
    await expectRejection(client.searchStudies(), 'http', `GET http://127.0.0.1:${port}/dicom-web/studies: PACS unreachable: ECONNREFUSED (connect ECONNREFUSED 127.0.0.1:${port})`);
  });

  it('HTTP errors: status, reason and the start of the answer; status kept on the error', async () => {
    const { url, server } = await serve((_req, res) => {
      res.writeHead(503, 'Service Unavailable', { 'Content-Type': 'text/plain' });
      res.end('database is locked\n');
    });
    servers.push(server);
    const err = await new DicomWebClient(url).searchSeries('1.2.3').catch((e: unknown) => e);
    expect(err).toEqual(new DicomError('http', `GET ${url}/studies/1.2.3/series: HTTP 503 Service Unavailable: database is locked`));
    expect((err as DicomError).status).toBe(503);
  });

  it('a server that never answers: timeout', async () => {
    const { url, server } = await serve(() => undefined);
    servers.push(server);
    await expectRejection(new DicomWebClient(url, { timeoutMs: 150 }).searchStudies(), 'http', `GET ${url}/studies: no answer within 150 ms`);
  });

  it('STOW-RS: instances the PACS refused are named with their FailureReason', async () => {
    // 202 with one stored and one failed (FailureReason 0xA700 = 42752, out of resources).
    const { url, server } = await serve((req, res) => {
      req.resume();
      res.writeHead(202, { 'Content-Type': 'application/dicom+json' });
      res.end(
        JSON.stringify({
          '00081199': { vr: 'SQ', Value: [{ '00081155': { vr: 'UI', Value: ['1.1'] } }] },
          '00081198': { vr: 'SQ', Value: [{ '00081155': { vr: 'UI', Value: ['1.2'] }, '00081197': { vr: 'US', Value: [42752] } }] },
        }),
      );
    });
    servers.push(server);
    await expectRejection(new DicomWebClient(url).store([new Uint8Array(4), new Uint8Array(4)]), 'http', `POST ${url}/studies: the PACS stored 1 of 2 instance(s); refused: 1.2 (FailureReason 42752)`);
  });

  it('WADO-RS answering something that is not multipart: protocol error', async () => {
    const { url, server } = await serve((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('[]');
    });
    servers.push(server);
    await expectRejection(new DicomWebClient(url).retrieve('1.2', '3.4'), 'protocol', `GET ${url}/studies/1.2/series/3.4: expected a multipart/related answer, got Content-Type "application/json"`);
  });

  it('a URL that is not http(s) is refused up front', () => {
    expect(() => new DicomWebClient('ftp://pacs/dicom-web')).toThrow(new DicomError('http', 'DICOMweb URL must be http or https, got "ftp://pacs/dicom-web"'));
  });
});

describe('pipeline failures without a PACS', () => {
  const never = async (): Promise<ReturnType<typeof makeVolume<Uint8Array>>> => makeVolume(new Uint8Array(1), [1, 1, 1]);

  it('runStudy: PACS down rejects with the connection error', async () => {
    const port = await closedPort();
    await expectRejection(runStudy(`http://127.0.0.1:${port}/dicom-web`, '1.2.3', never), 'http', `GET http://127.0.0.1:${port}/dicom-web/studies/1.2.3/series?includefield=0008103E&includefield=00200011&includefield=00201209: PACS unreachable: ECONNREFUSED (connect ECONNREFUSED 127.0.0.1:${port})`);
  });

  it('runStudy: an unknown study (empty QIDO answer) is a no-series error', async () => {
    const { url, server } = await serve((_req, res) => {
      res.writeHead(204);
      res.end();
    });
    servers.push(server);
    await expectRejection(runStudy(url, '1.2.3', never), 'no-series', 'study 1.2.3: not found on the PACS or has no series');
  });

  it('watch: a corrupt cursor file is refused with what was expected', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'purify-cursor-'));
    const cursor = join(dir, 'cursor.json');
    writeFileSync(cursor, '{"version": 1, "mode": "orthanc-changes", "since": -3}');
    try {
      await expectRejection(watch('http://127.0.0.1:1/dicom-web', cursor, never, { stopWhenIdle: true }), 'bad-attribute', `cursor ${cursor}: expected {"version": 1, "mode": "orthanc-changes", "since": <integer ≥ 0>} or {"version": 1, "mode": "qido", "seen": {…}}, got {"version": 1, "mode": "orthanc-changes", "since": -3}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('watch: the feed failing (PACS down) is logged; with stopWhenIdle it rejects', async () => {
    const port = await closedPort();
    const dir = mkdtempSync(join(tmpdir(), 'purify-cursor-'));
    const cursor = join(dir, 'cursor.json');
    writeFileSync(cursor, '{"version": 1, "mode": "orthanc-changes", "since": 5}');
    const events: string[] = [];
    try {
      await expectRejection(watch(`http://127.0.0.1:${port}/dicom-web`, cursor, never, { stopWhenIdle: true, log: (e) => events.push(`${e.level} ${e.event}`) }), 'http', `GET http://127.0.0.1:${port}/changes?since=5&limit=100: PACS unreachable: ECONNREFUSED (connect ECONNREFUSED 127.0.0.1:${port})`);
      expect(events).toEqual(['info watch-start', 'error feed-failed']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
