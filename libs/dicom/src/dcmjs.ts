/**
 * The slice of dcmjs we use, typed. dcmjs ships no type declarations; it is
 * loaded with require (its CommonJS build) and narrowed to these shapes here, in
 * one place, so the rest of the package never sees `any`.
 */
import { createRequire } from 'node:module';

/** A dataset in dcmjs's "naturalized" form: keyword → value (sequences are arrays of datasets). */
export type Naturalized = Record<string, unknown>;

export interface DcmjsDicomDict {
  meta: Record<string, unknown>;
  dict: Record<string, unknown>;
  write(options?: { allowInvalidVRLength?: boolean }): ArrayBuffer;
}

interface DcmjsModule {
  data: {
    DicomMessage: { readFile(buffer: ArrayBuffer, options?: { ignoreErrors?: boolean; untilTag?: string; includeUntilTagValue?: boolean }): DcmjsDicomDict };
    DicomMetaDictionary: {
      naturalizeDataset(dict: Record<string, unknown>): Naturalized;
      denaturalizeDataset(dataset: Naturalized): Record<string, unknown>;
    };
    DicomDict: new (meta: Record<string, unknown>) => DcmjsDicomDict;
  };
  log: { setLevel?(level: string): void; level?: unknown };
}

const load = createRequire(__filename);
export const dcmjs = load('dcmjs') as DcmjsModule;
// Our errors say what matters; dcmjs's own log is silenced. (It still prints VR fallbacks of
// some implicit-VR files, "Invalid vr type xs - using US", straight to console.error.)
dcmjs.log.setLevel?.('silent');

/** Copies a Uint8Array view into a standalone ArrayBuffer (dcmjs wants whole buffers). */
export function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return copy.buffer;
}
