// Lint: typed rules (no floating promises), one-way dependencies between Nx
// projects by tag, no import cycles, no deep imports into another package.
import nx from '@nx/eslint-plugin';
import importX from 'eslint-plugin-import-x';
import tseslint from 'typescript-eslint';

/** Who may depend on whom. Tags live in each package.json under "nx". */
const depConstraints = [
  // The contracts package imports nothing of ours.
  { sourceTag: 'type:proto', onlyDependOnLibsWithTags: [] },
  // Libraries use libraries and contracts, never services or tools.
  { sourceTag: 'type:lib', onlyDependOnLibsWithTags: ['type:lib', 'type:proto'] },
  // Services are thin shells over libraries; they never import each other.
  { sourceTag: 'type:service', onlyDependOnLibsWithTags: ['type:lib', 'type:proto'] },
  // Tools (the CLI) use libraries and contracts, and launch services.
  { sourceTag: 'type:tool', onlyDependOnLibsWithTags: ['type:lib', 'type:proto', 'type:service'] },
  { sourceTag: 'scope:contracts', onlyDependOnLibsWithTags: [] },
  { sourceTag: 'scope:shared', onlyDependOnLibsWithTags: ['scope:shared', 'scope:contracts'] },
  ...['segmenter', 'reliability', 'agent', 'trainer'].map((s) => ({
    sourceTag: `scope:${s}`,
    onlyDependOnLibsWithTags: [`scope:${s}`, 'scope:shared', 'scope:contracts'],
  })),
  {
    sourceTag: 'scope:cli',
    onlyDependOnLibsWithTags: ['scope:cli', 'scope:shared', 'scope:contracts', 'scope:segmenter', 'scope:reliability', 'scope:agent', 'scope:trainer'],
  },
];

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', '**/src/gen/**', '.nx/**', '**/*.js', '**/*.mjs', '**/*.cjs', 'coverage/**'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: {
        project: ['./proto/tsconfig.spec.json', './libs/*/tsconfig.spec.json', './services/*/tsconfig.spec.json', './tools/*/tsconfig.spec.json', './deploy/tsconfig.spec.json'],
        tsconfigRootDir: import.meta.dirname,
      },
    },
    plugins: { '@nx': nx, 'import-x': importX },
    settings: {
      'import-x/resolver-next': [importX.createNodeResolver({ conditionNames: ['@purify/source', 'types', 'require', 'node', 'default'] })],
    },
    rules: {
      '@nx/enforce-module-boundaries': ['error', { enforceBuildableLibDependency: false, allow: [], depConstraints }],
      'import-x/no-cycle': 'error',
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['@purify/*/src', '@purify/*/src/**', '@purify/*/dist', '@purify/*/dist/**'], message: 'Import the package by its name; its index.ts is its public surface.' },
            { group: ['**/libs/*', '**/libs/**', '**/services/**', '**/tools/**', '**/proto/src/**'], message: 'No relative imports into another package; import it by name.' },
          ],
        },
      ],
    },
  },
  {
    // Tests check error values and reach into mocks; the type-aware "unsafe" rules add noise there.
    files: ['**/*.spec.ts', '**/test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-require-imports': 'off',
    },
  },
);
