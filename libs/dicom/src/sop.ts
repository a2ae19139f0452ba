/** SOP class UIDs and fixed codes we write. */
export const SopClass = {
  CTImage: '1.2.840.10008.5.1.4.1.1.2',
  MRImage: '1.2.840.10008.5.1.4.1.1.4',
  Segmentation: '1.2.840.10008.5.1.4.1.1.66.4',
} as const;

/** A coded concept (PS3.3 Code Sequence Macro). */
export interface Code {
  readonly value: string;
  /** SCT (SNOMED CT), DCM (DICOM), or a private 99… scheme. */
  readonly scheme: string;
  readonly meaning: string;
}

/** derivedUid('purify implementation'). */
export const IMPLEMENTATION_CLASS_UID = '2.25.110825532348475773703814561212772461633';
export const IMPLEMENTATION_VERSION_NAME = 'PURIFY_0_1';

export function codeItem(code: Code): Record<string, unknown> {
  return { CodeValue: code.value, CodingSchemeDesignator: code.scheme, CodeMeaning: code.meaning };
}
