/**
 * Our own TensorFlow.js-wasm training kernels (issue #4 / #10). See docs/kernels.md.
 */
export { WASM_TRAINING_KERNELS, registerWasmTrainingKernels } from './register';
