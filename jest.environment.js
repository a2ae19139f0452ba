// Jest runs each test file in its own realm (vm context) with its own typed-array
// classes, while onnxruntime-node's native binding creates its output arrays in
// Node's main realm; onnxruntime-common then rejects them (`instanceof
// Float32Array` fails: "A float32 tensor's data must be type of function
// Float32Array()"). Sharing the main realm's binary classes with the test realm
// makes both sides agree. Nothing else about the node environment changes.
const { TestEnvironment } = require('jest-environment-node');

const SHARED = [
  'ArrayBuffer',
  'SharedArrayBuffer',
  'DataView',
  'Int8Array',
  'Uint8Array',
  'Uint8ClampedArray',
  'Int16Array',
  'Uint16Array',
  'Int32Array',
  'Uint32Array',
  'Float32Array',
  'Float64Array',
  'BigInt64Array',
  'BigUint64Array',
];

class SharedTypedArraysEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const name of SHARED) this.global[name] = globalThis[name];
  }
}

module.exports = SharedTypedArraysEnvironment;
