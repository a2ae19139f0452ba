/** Conversions between the proto messages and `@purify/reliability`. */
import {
  BorderMode as ProtoBorderMode,
  MapKind,
  Normalization_Kind,
  type FeatureSchema as ProtoFeatureSchema,
  type Normalization,
  type ReliabilityConfig,
  type RegionGrid,
} from '@purify/proto';
import { ErrorCode, PurifyError, validate } from '@purify/runtime';
import { anchorCentres, BorderMode, FEATURE_SCHEMA, type AnchorGrid, type IntensityNormalization, type ReliabilityMaps, type ReliabilityOptions, type Region } from '@purify/reliability';

/** proto `ReliabilityConfig` → library options (unspecified border mode = shift; batch 0 = `defaultBatch`). */
export function optionsFromProto(config: ReliabilityConfig, defaults: { patchBatchSize: number; concurrency: number }): ReliabilityOptions {
  const modes: Partial<Record<ProtoBorderMode, BorderMode>> = {
    [ProtoBorderMode.BORDER_MODE_UNSPECIFIED]: BorderMode.Shift,
    [ProtoBorderMode.BORDER_MODE_SHIFT]: BorderMode.Shift,
    [ProtoBorderMode.BORDER_MODE_PAD]: BorderMode.Pad,
  };
  const borderMode = modes[config.borderMode];
  if (borderMode === undefined) throw validate.invalid('setup.config.border_mode', 'must be BORDER_MODE_SHIFT or BORDER_MODE_PAD', config.borderMode);
  return {
    patchSize: config.patchSize,
    stride: config.stride,
    borderMode,
    splitByClass: config.splitByClass,
    batchSize: config.patchBatchSize === 0 ? defaults.patchBatchSize : config.patchBatchSize,
    concurrency: defaults.concurrency,
  };
}

/** proto `Normalization` → library spec; `field` names it in errors. */
export function normalizationFromProto(n: Normalization | undefined, field: string): IntensityNormalization {
  switch (n?.kind) {
    case Normalization_Kind.KIND_CT_WINDOW:
      return { kind: 'ct-window', lowHu: n.windowLow, highHu: n.windowHigh };
    case Normalization_Kind.KIND_PERCENTILE:
      return { kind: 'percentile', low: n.percentileLow, high: n.percentileHigh };
    case Normalization_Kind.KIND_ZSCORE:
      return { kind: 'zscore' };
    default:
      throw new PurifyError(ErrorCode.FailedPrecondition, `${field} has no usable normalization (got ${n ? Normalization_Kind[n.kind] : 'nothing'}); the reliability service must normalise patches as the model expects`);
  }
}

/** The requested maps, duplicates dropped (first occurrence kept); UNSPECIFIED is refused. */
export function mapsFromProto(maps: readonly MapKind[]): MapKind[] {
  const out: MapKind[] = [];
  maps.forEach((m, i) => {
    if (m === MapKind.MAP_KIND_UNSPECIFIED || MapKind[m] === undefined || m === MapKind.UNRECOGNIZED) {
      throw validate.invalid(`setup.maps[${i}]`, 'must be a MapKind other than MAP_KIND_UNSPECIFIED', MapKind[m] ?? m);
    }
    if (!out.includes(m)) out.push(m);
  });
  return out;
}

/** The per-pixel map of a kind, float32 `[z, y, x]`. */
export function mapOf(maps: ReliabilityMaps, kind: MapKind): Float32Array {
  switch (kind) {
    case MapKind.MAP_KIND_RELIABILITY:
      return maps.reliability;
    case MapKind.MAP_KIND_PSEUDO_LABEL:
      return maps.pseudoLabel;
    case MapKind.MAP_KIND_COMPOSED_LABEL:
      return maps.composedLabel;
    case MapKind.MAP_KIND_PATCH_VARIANCE:
      return maps.patchVariance;
    case MapKind.MAP_KIND_JS_DIVERGENCE:
      return maps.jsDivergence;
    case MapKind.MAP_KIND_MAX_PROBABILITY:
      return maps.maxProbability;
    default:
      return maps.regionIndex;
  }
}

/** The region grid message: anchor centres of one slice (every slice has the same anchors) and all regions. */
export function gridToProto(grid: AnchorGrid, regions: readonly Region[]): RegionGrid {
  return {
    imageShapeZyx: [...grid.shapeZyx],
    patchSize: grid.patchSize,
    stride: grid.stride,
    anchorCentresYx: anchorCentres(grid),
    regions: regions.map((r) => ({ index: r.index, slice: r.slice, y0: r.y0, y1: r.y1, x0: r.x0, x1: r.x1, classIndex: r.classIndex, pixelCount: r.pixelCount })),
  };
}

export function featureSchemaToProto(): ProtoFeatureSchema {
  return {
    version: FEATURE_SCHEMA.version,
    features: FEATURE_SCHEMA.features.map((f) => ({ name: f.name, description: f.description, min: f.min, max: f.max, normalization: f.normalization })),
  };
}
