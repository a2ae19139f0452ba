/** Registry meta and runtime state → the wire's ModelInfo. */
import type { ModelMeta, NormalizationSpec } from '@purify/artifacts';
import { Normalization_Kind, type ModelInfo, type Normalization } from '@purify/proto';

export function normalizationToProto(n: NormalizationSpec): Normalization {
  const base = { kind: Normalization_Kind.KIND_UNSPECIFIED, windowLow: 0, windowHigh: 0, percentileLow: 0, percentileHigh: 0 };
  switch (n.kind) {
    case 'ct-window':
      return { ...base, kind: Normalization_Kind.KIND_CT_WINDOW, windowLow: n.lowHu, windowHigh: n.highHu };
    case 'percentile':
      return { ...base, kind: Normalization_Kind.KIND_PERCENTILE, percentileLow: n.low, percentileHigh: n.high };
    case 'zscore':
      return { ...base, kind: Normalization_Kind.KIND_ZSCORE };
  }
}

/** ModelInfo of a registry version; `runtime` when it is loaded. */
export function modelInfoOf(meta: ModelMeta, runtime?: { executionProvider: string }): ModelInfo {
  const createdAt = new Date(meta.createdAt);
  return {
    ref: { name: meta.name, version: meta.version },
    classes: meta.classes.map((c) => ({ index: c.index, name: c.name })),
    inputChannels: meta.inputChannels,
    inputSizeYx: [...meta.inputSizeYx],
    spacingXyMm: meta.spacingXyMm ? [...meta.spacingXyMm] : [],
    normalization: normalizationToProto(meta.normalization),
    provenance: { ...meta.provenance },
    metrics: meta.metrics.map((m) => ({ name: m.name, value: m.value, split: m.split, measuredAt: undefined })),
    createdAt: Number.isNaN(createdAt.getTime()) ? undefined : createdAt,
    loaded: runtime !== undefined,
    executionProvider: runtime?.executionProvider ?? '',
    onnxSha256: meta.onnx.sha256,
  };
}
