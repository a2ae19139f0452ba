export { ORGAN_NAMES, OrganLabel, TISSUE_NAMES, Tissue, organOf, sampleAnatomy, tissueAt } from './anatomy';
export type { Anatomy } from './anatomy';
export { DEFAULT_GRID, DOMAINS, Domain, MR_SLICE_FACTOR, domainGrid, renderCase } from './render';
export type { GridSpec, RenderedCase } from './render';
export { GENERATOR_VERSION, GenerateError, caseSeed, generateBenchmark, intensityTable, validateGenerateOptions } from './generate';
export type { BenchmarkManifest, DomainOutput, GenerateOptions } from './generate';
export { IntensityAccumulator, quantile } from './stats';
export type { IntensityStats } from './stats';
