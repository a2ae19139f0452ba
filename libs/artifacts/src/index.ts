export { syncDirectory, writeFileAtomic, writeJsonAtomic } from './atomic';
export { MODEL_FILES, ModelRegistry, RegistryError } from './model-registry';
export type { ModelClass, ModelMeta, ModelVersion, NormalizationSpec } from './model-registry';
