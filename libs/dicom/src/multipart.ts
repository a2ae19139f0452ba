/**
 * multipart/related bodies (RFC 2387) as DICOMweb uses them: WADO-RS answers
 * and STOW-RS requests carry one DICOM Part-10 file per part.
 */
import { randomBytes } from 'node:crypto';
import { DicomError, DicomErrorKind } from './errors';

/** The boundary parameter of a multipart Content-Type header. */
export function boundaryOf(contentType: string, what: string): string {
  if (!/^\s*multipart\/related\b/i.test(contentType)) {
    throw new DicomError(DicomErrorKind.Protocol, `${what}: expected a multipart/related answer, got Content-Type "${contentType}"`);
  }
  const m = /;\s*boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  const boundary = m?.[1] ?? m?.[2];
  if (!boundary) throw new DicomError(DicomErrorKind.Protocol, `${what}: multipart Content-Type has no boundary: "${contentType}"`);
  return boundary;
}

export interface Part {
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Uint8Array;
}

/** Splits a multipart body into its parts (headers lower-cased). */
export function parseMultipart(body: Uint8Array, boundary: string, what: string): Part[] {
  const buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const delimiter = Buffer.from(`--${boundary}`);
  const parts: Part[] = [];
  let at = buf.indexOf(delimiter);
  if (at < 0) throw new DicomError(DicomErrorKind.Protocol, `${what}: multipart body does not contain its boundary "${boundary}"`);
  for (;;) {
    at += delimiter.length;
    if (buf[at] === 0x2d && buf[at + 1] === 0x2d) break; // "--": the close delimiter
    const headerEnd = buf.indexOf('\r\n\r\n', at);
    if (headerEnd < 0) throw new DicomError(DicomErrorKind.Protocol, `${what}: truncated multipart body (a part has no header end)`);
    const headers: Record<string, string> = {};
    for (const line of buf.subarray(at, headerEnd).toString('latin1').split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const start = headerEnd + 4;
    const next = buf.indexOf(Buffer.concat([Buffer.from('\r\n'), delimiter]), start);
    if (next < 0) throw new DicomError(DicomErrorKind.Protocol, `${what}: truncated multipart body (no closing boundary)`);
    parts.push({ headers, body: new Uint8Array(buf.subarray(start, next)) });
    at = next + 2;
  }
  return parts;
}

/** Builds a multipart/related body of DICOM files; returns it with its Content-Type. */
export function buildMultipart(files: readonly Uint8Array[], type = 'application/dicom'): { body: Uint8Array; contentType: string } {
  const boundary = `purify-${randomBytes(12).toString('hex')}`;
  const chunks: Buffer[] = [];
  for (const f of files) {
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Type: ${type}\r\n\r\n`), Buffer.from(f.buffer, f.byteOffset, f.byteLength), Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: new Uint8Array(Buffer.concat(chunks)), contentType: `multipart/related; type="${type}"; boundary=${boundary}` };
}
