// Shared jest configuration; each project's jest.config.js re-exports it.
// Tests run from the TypeScript sources: the `@purify/source` export condition
// makes `@purify/*` imports resolve to `src/` instead of `dist/`.
const { join } = require('node:path');

module.exports = {
  // Node environment sharing the main realm's typed-array classes (onnxruntime-node
  // needs it; see jest.environment.js).
  testEnvironment: join(__dirname, 'jest.environment.js'),
  testEnvironmentOptions: {
    customExportConditions: ['@purify/source', 'node', 'node-addons'],
  },
  // nifti-reader-js ships ES modules only (its exports have just an `import`
  // condition). The product loads it with a native dynamic import(); jest runs
  // CommonJS, so here it is mapped to its file and compiled to CommonJS.
  moduleNameMapper: {
    '^nifti-reader-js$': join(__dirname, 'node_modules/nifti-reader-js/dist/nifti.js'),
  },
  transformIgnorePatterns: ['/node_modules/(?!nifti-reader-js/)'],
  transform: {
    'node_modules/nifti-reader-js/.+\\.js$': [
      '@swc/jest',
      { jsc: { parser: { syntax: 'ecmascript' }, target: 'es2022' }, module: { type: 'commonjs' } },
    ],
    '^.+\\.ts$': [
      '@swc/jest',
      {
        jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
        module: { type: 'commonjs' },
        sourceMaps: 'inline',
      },
    ],
  },
  moduleFileExtensions: ['ts', 'js', 'json', 'node'],
  testMatch: ['<rootDir>/src/**/*.spec.ts', '<rootDir>/test/**/*.spec.ts'],
  testPathIgnorePatterns: ['/node_modules/', '/dist/'],
  // Integration tests start processes; give them room but never hang CI.
  testTimeout: 60_000,
};
