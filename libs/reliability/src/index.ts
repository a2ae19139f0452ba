// Region-wise pseudo-label reliability from anchor-patch decomposition and
// composition (DESIGN §4 steps 1–4). Pure: the model is a function argument.
export { ReliabilityError } from './errors';
export { BorderMode, DEFAULT_OPTIONS, resolveOptions } from './config';
export type { ReliabilityOptions, ResolvedOptions } from './config';
export { anchorCentres, anchorsPerSlice, buildGrid, buildRegions, cellEdges } from './grid';
export type { AnchorGrid, Region, RegionSet } from './grid';
export { argmaxAt, entropyAt, gaussianWeights, jsDivergenceAt, maxAt, normalizedEntropyAt } from './measures';
export { composeSlice, decomposeAndCompose, extractPatches } from './decompose';
export type { Composition, DecomposeOptions, PatchPredictor } from './decompose';
export { CLASS_FRACTION_COLUMNS, FEATURE_INDEX, FEATURE_SCHEMA, NUM_FEATURES, featureIndex, normalizeFeatures } from './schema';
export type { FeatureSchema, FeatureSpec, FeatureTransform } from './schema';
export { computeFeatures, pixelReliability } from './features';
export type { FeatureInputs, ReliabilityMaps, ReliabilityResult } from './features';
export { scoreReliability } from './score';
export type { ScoreInputs } from './score';
export { appearancePerturbation, flipX, perturbAppearance } from './views';
export type { AppearancePerturbation } from './views';
export { normalizeIntensities } from './normalize';
export type { IntensityNormalization } from './normalize';
export { auroc, averageRanks, fitLogistic, logisticPredict, pearson, spearman } from './stats';
export type { LogisticModel, LogisticOptions } from './stats';
