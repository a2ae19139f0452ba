/**
 * A DICOMweb client (PS3.18): QIDO-RS search, WADO-RS retrieval of whole
 * instances (multipart/related; type="application/dicom") and of metadata, and
 * STOW-RS store. Node's fetch; every request has a timeout; every failure is a
 * DicomError of kind `http` (unreachable, timeout, non-2xx with the server's
 * status and the start of its answer) or `protocol` (an answer that is not
 * what the standard specifies), naming the method and URL.
 */
import { dcmjs, type Naturalized } from './dcmjs';
import { optString } from './dataset';
import { DicomError, DicomErrorKind } from './errors';
import { boundaryOf, buildMultipart, parseMultipart } from './multipart';

export interface DicomWebOptions {
  /** Per-request timeout (default 30 s; retrievals of large series may need more). */
  readonly timeoutMs?: number;
  /** Extra headers on every request (e.g. Authorization). */
  readonly headers?: Readonly<Record<string, string>>;
  /** For tests: the fetch to use (default the global fetch). */
  readonly fetch?: typeof fetch;
}

export const DEFAULT_DICOMWEB_TIMEOUT_MS = 30_000;

/** What a STOW-RS request stored and what it refused. */
export interface StoreResult {
  readonly stored: readonly string[];
  readonly failed: readonly { readonly sopInstanceUid: string; readonly reason: string }[];
}

/** DICOM JSON (PS3.18 F.2) → dcmjs naturalized form (keyword → value). */
export function naturalizeJson(json: unknown): Naturalized {
  return dcmjs.data.DicomMetaDictionary.naturalizeDataset(json as Record<string, unknown>);
}

function describeFailure(err: unknown): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e.cause?.code) return `${e.cause.code}${e.cause.message ? ` (${e.cause.message})` : ''}`;
  return e.message ?? String(err);
}

export class DicomWebClient {
  readonly baseUrl: string;
  private readonly timeoutMs: number;
  private readonly headers: Readonly<Record<string, string>>;
  private readonly fetchImpl: typeof fetch;

  /** `baseUrl` is the DICOMweb root, e.g. http://pacs:8042/dicom-web. */
  constructor(baseUrl: string, options: DicomWebOptions = {}) {
    let url: URL;
    try {
      url = new URL(baseUrl);
    } catch {
      throw new DicomError(DicomErrorKind.Http, `DICOMweb URL must be an absolute http(s) URL, got "${baseUrl}"`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new DicomError(DicomErrorKind.Http, `DICOMweb URL must be http or https, got "${baseUrl}"`);
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.timeoutMs = options.timeoutMs ?? DEFAULT_DICOMWEB_TIMEOUT_MS;
    if (!Number.isFinite(this.timeoutMs) || this.timeoutMs <= 0) throw new DicomError(DicomErrorKind.Http, `timeoutMs must be positive, got ${this.timeoutMs}`);
    this.headers = options.headers ?? {};
    this.fetchImpl = options.fetch ?? fetch;
  }

  /**
   * One request: the answer when its status is 2xx, else a DicomError naming
   * the method, URL, status and the first 300 characters of the answer.
   */
  async request(method: 'GET' | 'POST', path: string, init: { accept: string; body?: Uint8Array; contentType?: string; signal?: AbortSignal; timeoutMs?: number }): Promise<{ status: number; contentType: string; body: Uint8Array }> {
    const url = `${this.baseUrl}${path}`;
    const timeoutMs = init.timeoutMs ?? this.timeoutMs;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = init.signal ? AbortSignal.any([timeout, init.signal]) : timeout;
    let response: Response;
    let body: Uint8Array;
    try {
      response = await this.fetchImpl(url, {
        method,
        headers: { ...this.headers, Accept: init.accept, ...(init.contentType ? { 'Content-Type': init.contentType } : {}) },
        ...(init.body ? { body: init.body } : {}),
        signal,
      });
      body = new Uint8Array(await response.arrayBuffer());
    } catch (err) {
      if (timeout.aborted) throw new DicomError(DicomErrorKind.Http, `${method} ${url}: no answer within ${timeoutMs} ms`, { cause: err });
      if (init.signal?.aborted) throw new DicomError(DicomErrorKind.Http, `${method} ${url}: cancelled`, { cause: err });
      throw new DicomError(DicomErrorKind.Http, `${method} ${url}: PACS unreachable: ${describeFailure(err)}`, { cause: err });
    }
    if (!response.ok) {
      const text = Buffer.from(body).toString('utf8').replace(/\s+/g, ' ').trim().slice(0, 300);
      throw new DicomError(DicomErrorKind.Http, `${method} ${url}: HTTP ${response.status} ${response.statusText}${text ? `: ${text}` : ''}`, { status: response.status });
    }
    return { status: response.status, contentType: response.headers.get('content-type') ?? '', body };
  }

  private async getJson(path: string, signal?: AbortSignal): Promise<Naturalized[]> {
    const { status, body } = await this.request('GET', path, { accept: 'application/dicom+json, application/json', ...(signal ? { signal } : {}) });
    if (status === 204 || body.length === 0) return [];
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.from(body).toString('utf8'));
    } catch (err) {
      throw new DicomError(DicomErrorKind.Protocol, `GET ${this.baseUrl}${path}: answer is not JSON: ${(err as Error).message}`, { cause: err });
    }
    if (!Array.isArray(parsed)) throw new DicomError(DicomErrorKind.Protocol, `GET ${this.baseUrl}${path}: expected a JSON array of datasets`);
    return parsed.map(naturalizeJson);
  }

  private static query(params: Readonly<Record<string, string | number | readonly string[]>> = {}): string {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (Array.isArray(v)) for (const x of v as readonly string[]) q.append(k, x);
      else q.append(k, String(v));
    }
    const s = q.toString();
    return s ? `?${s}` : '';
  }

  /** QIDO-RS /studies (e.g. {StudyDate: '20240101-', limit: 100}). */
  searchStudies(params?: Readonly<Record<string, string | number | readonly string[]>>, signal?: AbortSignal): Promise<Naturalized[]> {
    return this.getJson(`/studies${DicomWebClient.query(params)}`, signal);
  }

  /** QIDO-RS /studies/{study}/series. */
  searchSeries(studyUid: string, params?: Readonly<Record<string, string | number | readonly string[]>>, signal?: AbortSignal): Promise<Naturalized[]> {
    return this.getJson(`/studies/${encodeURIComponent(studyUid)}/series${DicomWebClient.query(params)}`, signal);
  }

  /** QIDO-RS /studies/{study}/series/{series}/instances. */
  searchInstances(studyUid: string, seriesUid: string, params?: Readonly<Record<string, string | number | readonly string[]>>, signal?: AbortSignal): Promise<Naturalized[]> {
    return this.getJson(`/studies/${encodeURIComponent(studyUid)}/series/${encodeURIComponent(seriesUid)}/instances${DicomWebClient.query(params)}`, signal);
  }

  /** WADO-RS metadata of one instance (no bulk data). */
  async instanceMetadata(studyUid: string, seriesUid: string, instanceUid: string, signal?: AbortSignal): Promise<Naturalized> {
    const list = await this.getJson(`/studies/${encodeURIComponent(studyUid)}/series/${encodeURIComponent(seriesUid)}/instances/${encodeURIComponent(instanceUid)}/metadata`, signal);
    const first = list[0];
    if (!first) throw new DicomError(DicomErrorKind.Protocol, `metadata of instance ${instanceUid}: empty answer`);
    return first;
  }

  /**
   * WADO-RS retrieval of every instance of a series (or, with seriesUid
   * undefined, of a study) as Part-10 bytes. `transferSyntax` '*' (default)
   * asks for the stored encoding; a UID (e.g. 1.2.840.10008.1.2.1) asks the
   * server to transcode (servers that cannot answer 406).
   */
  async retrieve(studyUid: string, seriesUid?: string, options: { transferSyntax?: string; signal?: AbortSignal; timeoutMs?: number } = {}): Promise<Uint8Array[]> {
    const path = `/studies/${encodeURIComponent(studyUid)}${seriesUid === undefined ? '' : `/series/${encodeURIComponent(seriesUid)}`}`;
    const { contentType, body } = await this.request('GET', path, {
      accept: `multipart/related; type="application/dicom"; transfer-syntax=${options.transferSyntax ?? '*'}`,
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    });
    const what = `GET ${this.baseUrl}${path}`;
    const parts = parseMultipart(body, boundaryOf(contentType, what), what);
    return parts.map((p) => p.body);
  }

  /**
   * STOW-RS: stores Part-10 files (into `studyUid` when given: the server then
   * refuses instances of other studies). Resolves when every instance was
   * stored; rejects (kind `http`) when the server refused any, naming each with
   * its FailureReason.
   */
  async store(files: readonly Uint8Array[], studyUid?: string, signal?: AbortSignal): Promise<StoreResult> {
    const { body, contentType } = buildMultipart(files);
    const path = `/studies${studyUid === undefined ? '' : `/${encodeURIComponent(studyUid)}`}`;
    // A 409 (every instance refused) rejects in request(), with the start of the server's answer.
    const answer = await this.request('POST', path, { accept: 'application/dicom+json', body, contentType, ...(signal ? { signal } : {}) });
    let result: Naturalized = {};
    if (answer.body.length > 0) {
      try {
        const parsed = JSON.parse(Buffer.from(answer.body).toString('utf8')) as unknown;
        result = naturalizeJson(Array.isArray(parsed) ? parsed[0] : parsed);
      } catch (err) {
        throw new DicomError(DicomErrorKind.Protocol, `POST ${this.baseUrl}${path}: STOW answer is not DICOM JSON: ${(err as Error).message}`, { cause: err });
      }
    }
    const seq = (k: string): Naturalized[] => {
      const v = result[k];
      return Array.isArray(v) ? (v as Naturalized[]) : v ? [v as Naturalized] : [];
    };
    const stored = seq('ReferencedSOPSequence').map((s) => optString(s, 'ReferencedSOPInstanceUID') ?? '');
    const failed = seq('FailedSOPSequence').map((s) => ({ sopInstanceUid: optString(s, 'ReferencedSOPInstanceUID') ?? '', reason: `FailureReason ${optString(s, 'FailureReason') ?? 'unknown'}` }));
    if (failed.length > 0 || stored.length < files.length) {
      throw new DicomError(
        DicomErrorKind.Http,
        `POST ${this.baseUrl}${path}: the PACS stored ${stored.length} of ${files.length} instance(s)${failed.length > 0 ? `; refused: ${failed.map((f) => `${f.sopInstanceUid} (${f.reason})`).join(', ')}` : ''}`,
        { status: answer.status },
      );
    }
    return { stored, failed };
  }
}
