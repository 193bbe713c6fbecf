// @ts-check
// Lint for src/: typescript-eslint's type-checked rules, plus the layer rules of docs/architecture.md
// ("Enforced layers"). Tests, benchmarks and build output are out of scope for now.
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import { createNodeResolver, importX } from 'eslint-plugin-import-x';
import tseslint from 'typescript-eslint';
import layers from './eslint-rules/no-folder-cycle.js';

/** A layer rule: files under `target` may not import from `from` (except `except`), with a message naming the layer. */
const zone = (/** @type {string} */ target, /** @type {string} */ from, /** @type {string[]} */ except, /** @type {string} */ message) => ({
  target,
  from,
  except,
  message,
});

export default defineConfig(
  { ignores: ['dist/**', 'node_modules/**', 'test/**', 'bench/**', 'bin/**', 'coverage/**', 'test-results/**', 'vitest.config.ts'] },
  {
    files: ['src/**/*.ts'],
    extends: [js.configs.recommended, tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // A function's whole span, blank lines and comments included, nested functions counted in their parent
      // too. The one exception, the declarative buildProgram (src/cli/main.ts), is waived where it stands.
      'max-lines-per-function': ['error', { max: 80, skipBlankLines: false, skipComments: false, IIFEs: true }],
      // `_name` marks a binding kept on purpose (a loop that only counts, a positional parameter).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' }],
      // Same policy as only-throw-error's defaults: rejecting with an AbortSignal's `reason` (typed any) is the contract.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingAny: true, allowThrowingUnknown: true }],
      // Off: every finding was a deliberate String() of parsed JSON/YAML narrowed from unknown to `{}`, which the rule cannot tell from an object.
      '@typescript-eslint/no-base-to-string': 'off',
    },
  },
  { files: ['eslint.config.js', 'eslint-rules/**/*.js'], extends: [js.configs.recommended] },
  {
    files: ['src/**/*.ts'],
    plugins: { 'import-x': importX, layers },
    settings: {
      // Without this, import-x treats .ts files as foreign and no-cycle silently sees no edges.
      'import-x/extensions': ['.ts', '.js'],
      // Sources import `./x.js` and mean `./x.ts` (NodeNext): resolve them the way tsc does, or the
      // layer rule below would silently skip every unresolved import.
      'import-x/resolver-next': [createNodeResolver({ extensions: ['.ts', '.js'], extensionAlias: { '.js': ['.ts', '.js'] } })],
    },
    rules: {
      // File-level import cycles, lazy imports included (type-only imports are not cycles at run time).
      'import-x/no-cycle': 'error',
      // Cycles between the top-level folders of src/ (eslint-rules/no-folder-cycle.js): static, lazy and
      // type-only imports alike, since a cycle between folders through types is still an architecture cycle.
      'layers/no-folder-cycle': ['error', { srcDir: `${import.meta.dirname}/src` }],
      // Static and lazy (`await import(...)`) imports alike.
      'import-x/no-restricted-paths': [
        'error',
        {
          zones: [
            zone(
              './src/engine',
              './src',
              ['./engine', './snapshot', './util', './contract'],
              'Layer rule "engine": src/engine/ may import only src/engine/, src/snapshot/, src/util/ and src/contract/ (it never imports the CLI side).',
            ),
            zone(
              './src/contract',
              './src',
              ['./contract'],
              'Layer rule "contract": src/contract/ is types shared by the engine and its client; it imports nothing else.',
            ),
            zone(
              './src/steps',
              './src/runner',
              [],
              'Layer rule "steps": src/steps/ must not import src/runner/ (a step gets what it needs through StepContext).',
            ),
            zone('./src/steps', './src/cli', [], 'Layer rule "steps": src/steps/ must not import src/cli/.'),
          ],
        },
      ],
    },
  },
);
