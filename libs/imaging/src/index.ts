// The volume type and its geometry.
export { IDENTITY_DIRECTION, VolumeError, isOrthonormal, makeVolume, voxelCount } from './volume';
export type { Vec3, Volume, VoxelArray } from './volume';
export { gridDifference, gridOf, indexToWorldLps, multiply4, orientationCode, worldLpsToIndex } from './geometry';
export type { Grid, GridTolerance } from './geometry';

// NIfTI-1 files.
export { NiftiDatatype, NiftiError, NiftiGeometrySource, decodeNifti, directionToQuaternion, encodeNifti, readNifti, readNiftiImage, writeNifti } from './nifti';
export type { NiftiDatatypeName, NiftiHeaderInfo, NiftiImage, NiftiReadOptions, NiftiWriteOptions } from './nifti';

// Dataset layouts.
export { CaseSplit, DatasetError, DatasetLayout, DatasetProblemKind, DatasetWriter, openDataset, openImageFolder, validateDataset } from './dataset';
export type { CaseToWrite, Dataset, DatasetCase, DatasetMeta, DatasetProblem, ValidateOptions } from './dataset';

// Preprocessing.
export { ABDOMEN_WINDOW, IntensityError, huWindow, percentile, percentileClip, percentiles, windowHu } from './intensity';
export type { HuWindow, PercentileClipOptions, PercentileClipResult } from './intensity';
export { Interpolation, ResampleError, resampleToGrid, resampleVolume, resampledGrid } from './resample';
export type { ResampleOptions, ResampleTarget, Resampled } from './resample';
export { cropVolume, foregroundBox, pasteVolume } from './crop';
export type { Box, ForegroundOptions } from './crop';
export { axialSlice, fromAxialSlices, toAxialSlices } from './slices';
export type { Slice, SliceStack } from './slices';

// Seeded randomness and augmentation.
export { Rng } from './rng';
export {
  AugmentError,
  addGaussianNoise,
  adjustContrast,
  applyCurve,
  biasField,
  gammaTransform,
  gaussianBlur,
  monotoneCubic,
  randomAppearance,
  randomMonotonicCurve,
  randomNonMonotonicCurve,
  sampleSpatialTransform,
  warp,
  warpSample,
} from './augment';
export type { AppearanceOptions, CurveOptions, ImageArray, IntensityCurve, SpatialOptions, SpatialTransform, TrainingSample } from './augment';
export {
  applyClassMaps,
  applyRandomConvNet,
  blendImages,
  classwiseRemap,
  evalClassMap,
  evalCurve,
  randomBezierCurve,
  randomConvAppearance,
  sampleClassMaps,
  sampleRandomConvNet,
  smoothRandomMask,
} from './augment-agnostic';
export type { BezierCurveOptions, ClassMap, ClasswiseRemapOptions, RandomConvLayer, RandomConvNet, RandomConvOptions, SmoothMaskOptions, TabulatedCurve } from './augment-agnostic';

// PNG figures.
export { LABEL_COLORS, PngError, encodePng, enlargeImage, grayscaleImage, heatColor, labelColor, overlayImage, tileHorizontally, tileVertically, writePng } from './png';
export type { GrayscaleOptions, OverlayOptions, RgbaImage, SliceInput } from './png';
