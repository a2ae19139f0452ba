/**
 * Transfer syntaxes: which ones we decode, and the names of the rest for errors.
 *
 * dcmjs parses the dataset of every transfer syntax below (it reads
 * encapsulated pixel data as raw fragments), but decodes pixels only for the
 * native (uncompressed) ones; it has no image codecs. So we decode:
 *   - Implicit VR Little Endian        1.2.840.10008.1.2
 *   - Explicit VR Little Endian        1.2.840.10008.1.2.1
 *   - Deflated Explicit VR Little Endian 1.2.840.10008.1.2.1.99 (dcmjs inflates the dataset)
 *   - Explicit VR Big Endian (retired) 1.2.840.10008.1.2.2 (dcmjs leaves pixel bytes
 *     big-endian; we swap them)
 * and refuse every encapsulated syntax (JPEG, JPEG-LS, JPEG 2000, RLE, HTJ2K,
 * MPEG/HEVC …) with an error naming it. A DICOMweb server can usually transcode
 * such series to Explicit VR Little Endian on retrieval (see `transferSyntax`
 * of `DicomWebClient.retrieveSeries`).
 */

export const TransferSyntax = {
  ImplicitLittleEndian: '1.2.840.10008.1.2',
  ExplicitLittleEndian: '1.2.840.10008.1.2.1',
  DeflatedExplicitLittleEndian: '1.2.840.10008.1.2.1.99',
  ExplicitBigEndian: '1.2.840.10008.1.2.2',
} as const;
export type TransferSyntax = (typeof TransferSyntax)[keyof typeof TransferSyntax];

/** The transfer syntaxes whose pixel data we decode (see the file comment). */
export const DECODABLE_TRANSFER_SYNTAXES: readonly string[] = Object.values(TransferSyntax);

const NAMES: Readonly<Record<string, string>> = {
  '1.2.840.10008.1.2': 'Implicit VR Little Endian',
  '1.2.840.10008.1.2.1': 'Explicit VR Little Endian',
  '1.2.840.10008.1.2.1.99': 'Deflated Explicit VR Little Endian',
  '1.2.840.10008.1.2.2': 'Explicit VR Big Endian',
  '1.2.840.10008.1.2.4.50': 'JPEG Baseline (Process 1)',
  '1.2.840.10008.1.2.4.51': 'JPEG Extended (Process 2 & 4)',
  '1.2.840.10008.1.2.4.57': 'JPEG Lossless, Non-Hierarchical (Process 14)',
  '1.2.840.10008.1.2.4.70': 'JPEG Lossless, First-Order Prediction (Process 14 SV1)',
  '1.2.840.10008.1.2.4.80': 'JPEG-LS Lossless',
  '1.2.840.10008.1.2.4.81': 'JPEG-LS Lossy (Near-Lossless)',
  '1.2.840.10008.1.2.4.90': 'JPEG 2000 Image Compression (Lossless Only)',
  '1.2.840.10008.1.2.4.91': 'JPEG 2000 Image Compression',
  '1.2.840.10008.1.2.4.92': 'JPEG 2000 Part 2 Multi-component (Lossless Only)',
  '1.2.840.10008.1.2.4.93': 'JPEG 2000 Part 2 Multi-component',
  '1.2.840.10008.1.2.4.100': 'MPEG2 Main Profile / Main Level',
  '1.2.840.10008.1.2.4.102': 'MPEG-4 AVC/H.264 High Profile',
  '1.2.840.10008.1.2.4.201': 'High-Throughput JPEG 2000 (Lossless Only)',
  '1.2.840.10008.1.2.4.202': 'High-Throughput JPEG 2000 with RPCL Options (Lossless Only)',
  '1.2.840.10008.1.2.4.203': 'High-Throughput JPEG 2000',
  '1.2.840.10008.1.2.5': 'RLE Lossless',
};

/** "JPEG 2000 Image Compression (1.2.840.10008.1.2.4.91)", or the bare UID when unknown. */
export function transferSyntaxName(uid: string): string {
  const name = NAMES[uid];
  return name === undefined ? `unknown transfer syntax ${uid}` : `${name} (${uid})`;
}
