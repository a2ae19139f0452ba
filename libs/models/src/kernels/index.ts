/**
 * Our own TensorFlow.js-wasm training kernels (issue #4 / #10), with native
 * (C++ / OpenBLAS) variants where the addon is built. See docs/kernels.md.
 */
export { WASM_TRAINING_KERNELS, nativeKernels, registerWasmTrainingKernels, type RegisterOptions } from './register';
export { NATIVE_ADDON_PATH, loadNativeAddon, nativeAddon, type NativeAddon, type NativeLoad, type NativeStatus } from './native';
