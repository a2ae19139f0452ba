/**
 * Patient data never reaches a log line, span or metric (issue #8): a CT study
 * whose DICOM header carries a patient's name, ID, birth date, accession
 * number, institution and referring physician goes through the real PACS
 * pipeline, and every line and span every process wrote is searched for them.
 *
 * The pipeline, as a site runs it:
 *   - a real Orthanc (libs/dicom/test/orthanc.ts: own network namespace, loopback
 *     bridge) holding the phantom CT series with the patient attributes below;
 *   - the real segmenter service as a process (sources through tsx, as
 *     `purify up` starts it) on 127.0.0.1 port 0, log level debug (every line it
 *     can write), its Prometheus endpoint on, serving a tiny real ONNX model
 *     (one 1×1 convolution: liver where HU > −25, else background);
 *   - the real `purify pacs run` command (bin/purify.js), twice: the text output,
 *     then `--force --json`; it stores the SEG back in Orthanc.
 * Every process exports its spans by OTLP/HTTP (JSON), as the standard OTEL_*
 * variables choose, to a stand-in collector on loopback; the services flush on
 * SIGTERM and the CLI when it exits.
 *
 * Searched: the CLI's stdout and stderr, the segmenter's stdout and stderr,
 * every OTLP request body (spans with their resource, attributes, events and
 * status), and the segmenter's Prometheus text. Searched for: each patient
 * attribute whole and each of its parts (a name may come out as "Jane Doe"),
 * case-insensitively, as a word of its own (so "does" is not "DOE", and a
 * number inside a longer number or hex id is not a hit). The DICOM UIDs of the
 * study, series and instances must not be in any span, metric or service log
 * either (the segmenter gets an opaque case id, exported resources leave out
 * command lines; docs/deploying.md, "Patient data"); only the CLI's own output
 * names them, as the operator needs to find the study.
 *
 * Pixel data: the voxels of the series are 16-bit integers, the label map 8-bit.
 * Text carrying them would show one of: the bytes of a slice in base64 or hex
 * (checked for a window of each slice, in each of the three base64 alignments),
 * the HU values of a slice row as a number list (checked for each slice's
 * centre row), or, for any encoding of any array, a long run of base64/hex
 * characters (≥ 64, i.e. ≥ 48 bytes; trace ids are 32 hex digits) or a long
 * comma-separated number list (≥ 32 numbers; the longest legitimate one is a
 * 3-element shape).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { ModelRegistry } from '@purify/artifacts';
import { DicomWebClient, writeSeries } from '@purify/dicom';
import { Rng } from '@purify/imaging';
import { exportLayersModel, ONNX_INPUT_NAME, ONNX_OPSET, ONNX_OUTPUT_NAME } from '@purify/models';
import { renderCase, sampleAnatomy } from '@purify/phantoms';
import { freeLoopbackPort } from '@purify/runtime';

const ROOT = resolve(__dirname, '../../..');
const BIN = join(__dirname, '..', 'bin', 'purify.js');
const TSX = pathToFileURL(require.resolve('tsx')).href;

/** The part of libs/dicom/test/orthanc.ts this test uses (a test helper of @purify/dicom, loaded by path). */
interface OrthancHandle {
  readonly url: string;
  readonly dicomWebUrl: string;
  stop(): Promise<void>;
}
// A test helper of @purify/dicom, not part of its public surface: loaded by path, as data-evaluate.spec.ts reaches @purify/metrics' oracle.
const { startOrthanc } = require(join(dirname(require.resolve('@purify/dicom')), '..', 'test', 'orthanc.ts')) as { startOrthanc: () => Promise<OrthancHandle> };

/** The patient attributes planted in every instance, and the parts each could leak as. */
const PATIENT = {
  PatientName: { value: 'DOE^JANE^Q', parts: ['DOE^JANE^Q', 'DOE', 'JANE'] },
  PatientID: { value: 'PID-73519-X', parts: ['PID-73519-X', '73519'] },
  PatientBirthDate: { value: '19610417', parts: ['19610417', '1961-04-17'] },
  AccessionNumber: { value: 'ACC-88214-Z', parts: ['ACC-88214-Z', '88214'] },
  InstitutionName: { value: 'ST ELSEWHERE GENERAL', parts: ['ST ELSEWHERE GENERAL', 'ELSEWHERE'] },
  ReferringPhysicianName: { value: 'KILDARE^JAMES', parts: ['KILDARE^JAMES', 'KILDARE', 'JAMES'] },
  // Free text a technologist typed the patient into (#25 item 11: it reached the CLI's series-selected line).
  SeriesDescription: { value: 'ABDOMEN CT JANE DOE FOLLOW-UP', parts: ['ABDOMEN CT JANE DOE FOLLOW-UP', 'FOLLOW-UP'] },
} as const;

/** `needle` as a word of its own, case-insensitive: not inside a longer word, number or dotted number. */
function wordPattern(needle: string): RegExp {
  const escaped = needle.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(?<![A-Za-z0-9.])${escaped}(?![A-Za-z0-9])`, 'i');
}

// ---------------------------------------------------------------- the study

/** Phantom CT, 48 × 48 × 8 (8 mm × 8 mm × 6 mm voxels), HU. */
const rng = new Rng(73);
const ct = renderCase(sampleAnatomy(rng), 'ct', { size: 48, slices: 8, fovMm: 384, sliceMm: 6 }, rng).image;
const series = writeSeries(ct, {
  rescaleIntercept: -1024,
  seriesDescription: PATIENT.SeriesDescription.value,
  imageType: ['ORIGINAL', 'PRIMARY', 'AXIAL'],
  patientName: PATIENT.PatientName.value,
  patientId: PATIENT.PatientID.value,
  patientBirthDate: PATIENT.PatientBirthDate.value,
  accessionNumber: PATIENT.AccessionNumber.value,
  institutionName: PATIENT.InstitutionName.value,
  referringPhysicianName: PATIENT.ReferringPhysicianName.value,
});
const UIDS = [series.studyInstanceUid, series.seriesInstanceUid, ...series.instances.map((i) => i.sopInstanceUid)];

/** Text forms of the voxels (see the file comment): per slice, a base64 window in each alignment, a hex window and the centre row as a number list. */
function pixelNeedles(): { what: string; needle: string }[] {
  const [nz, ny, nx] = ct.shape;
  const out: { what: string; needle: string }[] = [];
  for (let z = 0; z < nz; z++) {
    // The stored int16 values (HU + 1024), little-endian, of the slice's centre rows.
    const row = (ny >> 1) * nx;
    const stored = Int16Array.from(ct.data.subarray(z * ny * nx + row, z * ny * nx + row + 2 * nx), (hu) => hu + 1024);
    const bytes = Buffer.from(stored.buffer);
    for (let shift = 0; shift < 3; shift++) {
      // base64 of bytes[shift …] — the same characters appear inside the base64 of any buffer holding them at that alignment.
      out.push({ what: `slice ${z} bytes as base64 (alignment ${shift})`, needle: bytes.subarray(shift, shift + 48).toString('base64') });
    }
    out.push({ what: `slice ${z} bytes as hex`, needle: bytes.subarray(0, 32).toString('hex') });
    out.push({ what: `slice ${z} centre row HU as a list`, needle: Array.from(ct.data.subarray(z * ny * nx + row, z * ny * nx + row + nx)).join(',') });
  }
  return out;
}

/** Any array as text: ≥ 64 base64/hex characters in a row, or ≥ 32 comma-separated numbers. */
const LONG_BINARY = /[A-Za-z0-9+/]{64,}={0,2}/;
const LONG_NUMBER_LIST = /(?:[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\s*,\s*){31,}[-+]?\d/;

// ---------------------------------------------------------------- the model

/** One 1×1 convolution + softmax over 2 classes on the CT-window input x = (HU + 100) / 300: liver where 40·x − 10 > 0, i.e. HU > −25. */
async function publishModel(artifacts: string): Promise<void> {
  tf.env().set('IS_TEST', true); // silences tfjs' "install the node backend" banner
  await tf.setBackend('cpu');
  const input = tf.input({ shape: [null, null, 1] });
  const conv = tf.layers.conv2d({ filters: 2, kernelSize: 1, useBias: true });
  const net = tf.model({ inputs: input, outputs: tf.layers.softmax({ axis: -1 }).apply(conv.apply(input)) as tf.SymbolicTensor });
  try {
    conv.setWeights([tf.tensor4d([-20, 20], [1, 1, 1, 2]), tf.tensor1d([5, -5])]);
    new ModelRegistry(artifacts).publish(
      'abdomen',
      { onnx: exportLayersModel(net) },
      {
        classes: [
          { index: 0, name: 'background' },
          { index: 1, name: 'liver' },
        ],
        inputChannels: 1,
        inputSizeYx: [16, 16],
        normalization: { kind: 'ct-window', lowHu: -100, highHu: 200 },
        onnx: { input: ONNX_INPUT_NAME, output: ONNX_OUTPUT_NAME, opset: ONNX_OPSET },
        provenance: { test: 'pacs-patient-data' },
        metrics: [],
      },
    );
  } finally {
    net.dispose();
  }
}

// ---------------------------------------------------------------- processes and the collector

/** Everything a process wrote, as it wrote it. */
interface Captured {
  readonly name: string;
  stdout: string;
  stderr: string;
  exitCode: number | null;
}

function capture(name: string, child: ChildProcess): { out: Captured; exited: Promise<void> } {
  const out: Captured = { name, stdout: '', stderr: '', exitCode: null };
  child.stdout?.on('data', (b: Buffer) => (out.stdout += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (out.stderr += b.toString()));
  const exited = new Promise<void>((res) =>
    child.once('exit', (code) => {
      out.exitCode = code;
      res();
    }),
  );
  return { out, exited };
}

/** OTLP/HTTP stand-in: keeps every request body as received. */
const otlpBodies: { path: string; body: string }[] = [];
const collector: Server = createServer((req, res) => {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (chunk: string) => (body += chunk));
  req.on('end', () => {
    otlpBodies.push({ path: req.url ?? '', body });
    res.setHeader('content-type', 'application/json');
    res.end('{}');
  });
});

interface OtlpSpan {
  service: string;
  name: string;
  kind: number;
}
function spansOf(bodies: readonly { path: string; body: string }[]): OtlpSpan[] {
  interface Payload {
    resourceSpans?: { resource: { attributes: { key: string; value: { stringValue?: string } }[] }; scopeSpans: { spans: { name: string; kind: number }[] }[] }[];
  }
  return bodies
    .filter((b) => b.path === '/v1/traces')
    .flatMap((b) =>
      ((JSON.parse(b.body) as Payload).resourceSpans ?? []).flatMap((rs) => {
        const service = rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue ?? '';
        return rs.scopeSpans.flatMap((ss) => ss.spans.map((s) => ({ service, name: s.name, kind: s.kind })));
      }),
    );
}

// OTLP SpanKind values (the JSON encoding).
const SERVER = 2;
const CLIENT = 3;

let orthanc: OrthancHandle | undefined;
let artifacts: string;
let segmenter: ChildProcess | undefined;
let segmenterExited: Promise<void> = Promise.resolve();
const logs: Captured[] = [];
let metricsText = '';
let segmenterLog: Captured;
let cliText: Captured;
let cliJson: Captured;

function otelEnv(): NodeJS.ProcessEnv {
  return {
    // The caller's OTEL_* cleared: only what the test sets applies.
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OTEL_'))),
    OTEL_TRACES_EXPORTER: 'otlp',
    OTEL_METRICS_EXPORTER: 'otlp',
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(collector.address() as AddressInfo).port}`,
  };
}

async function startSegmenter(metricsPort: number): Promise<string> {
  const child = spawn(
    process.execPath,
    [`--import=${TSX}`, '--conditions=@purify/source', join(ROOT, 'services', 'segmenter', 'src', 'main.ts'), '--port', '0', '--metrics-port', String(metricsPort), '--log-level', 'debug', '--artifacts-dir', artifacts],
    { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], env: otelEnv() },
  );
  segmenter = child;
  const { out, exited } = capture('segmenter', child);
  segmenterLog = out;
  segmenterExited = exited;
  logs.push(out);
  return new Promise((res, rej) => {
    child.once('message', (m: { type?: string; address?: string }) => (m.type === 'purify.ready' && m.address ? res(m.address) : rej(new Error(`segmenter: unexpected message ${JSON.stringify(m)}`))));
    void exited.then(() => rej(new Error(`segmenter exited with ${out.exitCode} before it was ready:\n${out.stderr}${out.stdout}`)));
  });
}

let cli: ChildProcess | undefined;

async function purify(name: string, args: readonly string[]): Promise<Captured> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: otelEnv() });
  cli = child;
  const { out, exited } = capture(name, child);
  logs.push(out);
  await exited;
  return out;
}

async function stopSegmenter(): Promise<void> {
  if (segmenter && segmenter.exitCode === null && segmenter.signalCode === null) segmenter.kill('SIGTERM');
  await segmenterExited;
}

beforeAll(async () => {
  artifacts = mkdtempSync(join(tmpdir(), 'purify-pacs-patient-'));
  await new Promise<void>((res) => collector.listen(0, '127.0.0.1', res));
  const metricsPort = await freeLoopbackPort();
  // Orthanc, the model and the segmenter's start-up (tsx) overlap; each is kept as soon as it runs, for afterAll to stop.
  const [pacs, address] = await Promise.all([
    startOrthanc().then((o) => (orthanc = o)),
    publishModel(artifacts).then(() => startSegmenter(metricsPort)),
  ]);
  await new DicomWebClient(pacs.dicomWebUrl).store(series.instances.map((i) => i.bytes));

  const common = ['pacs', 'run', '--url', pacs.dicomWebUrl, '--study', series.studyInstanceUid, '--segmenter', address, '--model', 'abdomen:1'];
  cliText = await purify('purify pacs run', common);
  cliJson = await purify('purify pacs run --force --json', [...common, '--force', '--json']);

  const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { signal: AbortSignal.timeout(10_000) });
  metricsText = await res.text();
  // SIGTERM: the segmenter drains, then flushes its last spans and metrics to the collector.
  await stopSegmenter();
  // Generous: Orthanc's start and two tsx start-ups on a loaded 2-core machine.
}, 180_000);

afterAll(async () => {
  // A CLI still running here hung past beforeAll's timeout; the CLI process bin/purify.js started stops when it loses its IPC channel.
  if (cli && cli.exitCode === null && cli.signalCode === null) cli.kill('SIGKILL');
  await stopSegmenter();
  await orthanc?.stop();
  await new Promise<void>((res) => collector.close(() => res()));
  if (artifacts) rmSync(artifacts, { recursive: true, force: true });
}, 30_000);

/** Every searched text, named by where it came from. */
function everything(): { source: string; text: string }[] {
  return [
    ...logs.flatMap((c) => [
      { source: `${c.name} stdout`, text: c.stdout },
      { source: `${c.name} stderr`, text: c.stderr },
    ]),
    ...otlpBodies.map((b, i) => ({ source: `OTLP request ${i + 1} (${b.path})`, text: b.body })),
    { source: 'segmenter Prometheus /metrics', text: metricsText },
  ];
}

/** Where `pattern` occurs: source and 60 characters around the first hit. */
function hits(pattern: RegExp | string, texts = everything()): string[] {
  return texts.flatMap(({ source, text }) => {
    const at = typeof pattern === 'string' ? text.indexOf(pattern) : text.search(pattern);
    return at < 0 ? [] : [`${source}: …${text.slice(Math.max(0, at - 30), at + 30)}…`];
  });
}

describe('a study with patient data through the real PACS pipeline', () => {
  it('the study on the PACS carries the patient attributes (Orthanc reads them back)', async () => {
    const first = series.instances[0]?.sopInstanceUid ?? '';
    const ds = await new DicomWebClient(orthanc!.dicomWebUrl).instanceMetadata(series.studyInstanceUid, series.seriesInstanceUid, first);
    // Person names come back as {Alphabetic: …}.
    const str = (v: unknown): string => (typeof v === 'object' && v !== null && 'Alphabetic' in v ? String(v.Alphabetic) : String(v));
    expect(Object.fromEntries(Object.keys(PATIENT).map((k) => [k, str(ds[k])]))).toEqual(Object.fromEntries(Object.entries(PATIENT).map(([k, { value }]) => [k, value])));
  });

  it('the pipeline ran: both runs stored the SEG, for the same patient, through a Segment call of the segmenter', async () => {
    expect([cliText.exitCode, cliText.stderr]).toEqual([0, '']);
    expect(cliText.stdout).toMatch(new RegExp(`stored SEG series [0-9.]+ for series ${series.seriesInstanceUid.replace(/\./g, '\\.')} \\(\\d+ frames: Liver \\d+ voxels\\)`));
    expect([cliJson.exitCode, cliJson.stderr]).toEqual([0, '']);
    const result = JSON.parse(cliJson.stdout) as { outcome: string; segSeriesInstanceUid: string };
    expect(result.outcome).toBe('stored');
    // The SEG in Orthanc copies the source's patient module: the patient data did flow through the pipeline.
    const client = new DicomWebClient(orthanc!.dicomWebUrl);
    const segs = (await client.searchSeries(series.studyInstanceUid, { Modality: 'SEG' })).map((s) => String(s['SeriesInstanceUID']));
    expect(segs).toEqual([result.segSeriesInstanceUid]);
    const [seg] = await client.retrieve(series.studyInstanceUid, result.segSeriesInstanceUid);
    expect(Buffer.from(seg as Uint8Array).includes(PATIENT.PatientName.value)).toBe(true);
    // Two Segment calls served, each logged once.
    const segmented = segmenterLog.stdout.split('\n').filter((l) => l.includes('"msg":"segmented"'));
    expect(segmented.length).toBe(2);
    expect(metricsText).toMatch(/purify_rpc_server_requests_total\{[^}]*rpc_method="Segment"[^}]*rpc_grpc_status="OK"[^}]*\} 2\b/);
  });

  it('every process wrote logs and exported spans; the Segment call has its client and server span', () => {
    expect(segmenterLog.stdout.split('\n').filter((l) => l.startsWith('{')).length).toBeGreaterThan(5);
    const spans = spansOf(otlpBodies);
    const segment = 'grpc.purify.v1.SegmenterService/Segment';
    expect(spans.filter((s) => s.name === segment).map((s) => `${s.service} ${s.kind}`).sort()).toEqual(
      [`purify-cli ${CLIENT}`, `purify-cli ${CLIENT}`, `purify-segmenter ${SERVER}`, `purify-segmenter ${SERVER}`].sort(),
    );
    expect(otlpBodies.some((b) => b.path === '/v1/metrics')).toBe(true);
  });

  describe('no patient attribute, whole or in part, in any log line, span or metric', () => {
    it.each(Object.entries(PATIENT).flatMap(([attribute, { parts }]) => parts.map((part) => [attribute, part] as const)))('%s: "%s"', (_attribute, part) => {
      expect(hits(wordPattern(part))).toEqual([]);
    });
  });

  it('no DICOM UID of the study in any span, metric or service log; only the CLI’s own output names the study', () => {
    const exported = everything().filter((t) => !t.source.startsWith('purify pacs run'));
    expect(exported.map((t) => t.source.replace(/ \d+ /, ' N ')).filter((s, i, all) => all.indexOf(s) === i).sort()).toEqual(
      ['OTLP request N (/v1/metrics)', 'OTLP request N (/v1/traces)', 'segmenter Prometheus /metrics', 'segmenter stderr', 'segmenter stdout'].sort(),
    );
    expect(UIDS.flatMap((uid) => hits(uid, exported))).toEqual([]);
    // The search finds a UID where there is one: the operator's output names the study.
    expect(hits(series.studyInstanceUid).map((h) => h.split(':')[0])).toEqual(['purify pacs run stdout', 'purify pacs run --force --json stdout']);
  });

  it('no pixel data: no slice bytes (base64, hex), no slice row as numbers, no long binary run or number list', () => {
    const needles = pixelNeedles();
    expect(needles.flatMap(({ what, needle }) => hits(needle).map((h) => `${what}: ${h}`))).toEqual([]);
    expect(hits(LONG_BINARY)).toEqual([]);
    expect(hits(LONG_NUMBER_LIST)).toEqual([]);
  });

  it('the searches find what they look for (so an empty result means something)', () => {
    // Words: "Jane Doe" is a hit for DOE and JANE; "does", a UID digit run and a hex id are not.
    const found = (part: string, text: string): boolean => wordPattern(part).test(text);
    expect([found('DOE', 'patient Jane Doe'), found('JANE', '{"name":"jane"}'), found('73519', 'id PID-73519-X'), found('88214', 'acc=88214')]).toEqual([true, true, true, true]);
    expect([found('DOE', 'it does not'), found('73519', '2.25.1735190'), found('73519', '1.2.73519'), found('73519', 'a73519f')]).toEqual([false, false, false, false]);
    // Pixels: each slice's DICOM file, as base64 and hex, holds that slice's needles; a pixel array as JSON is a long number list.
    const needles = pixelNeedles();
    // The rows cross the body: varied values, not a run of one byte that any zero padding would match.
    expect(needles.filter((n) => new Set(n.needle).size < 8)).toEqual([]);
    series.instances.forEach((instance, z) => {
      const asText = Buffer.from(instance.bytes).toString('base64') + ' ' + Buffer.from(instance.bytes).toString('hex');
      expect(needles.filter((n) => n.what.startsWith(`slice ${z} bytes`) && asText.includes(n.needle)).length).toBeGreaterThanOrEqual(2);
      expect(LONG_BINARY.test(asText)).toBe(true);
    });
    expect(LONG_NUMBER_LIST.test(JSON.stringify({ data: Array.from(ct.data.subarray(0, 48)) }))).toBe(true);
    expect(needles.filter((n) => n.what.endsWith('as a list')).every((n) => LONG_NUMBER_LIST.test(n.needle))).toBe(true);
  });
});
