import { defineConfig } from 'vitest/config';

// One project per kind of test, so a change can be checked at the speed it needs:
// `npm run test:unit` in seconds, `npm test` (every project) before a push and on CI.
export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Most tests wait on child processes (engines, rehearsals), not on the CPU: two at a time on CI's two
    // cores, where vitest's default would be one.
    maxWorkers: 2,
    // Results for .ci/run's summary line, beside the usual console report.
    reporters: ['default', ['json', { outputFile: 'test-results/vitest.json' }]],
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      { extends: true, test: { name: 'integration', include: ['test/integration/**/*.test.ts'] } },
      { extends: true, test: { name: 'e2e', include: ['test/e2e/**/*.test.ts'] } },
      { extends: true, test: { name: 'drills', include: ['test/drills.test.ts'] } },
    ],
    // With --coverage, which `npm test` (and so CI) passes: in-process code only (what the e2e tests run in
    // child processes is not counted). The thresholds hold for `npm test` (55.3 / 51.0 / 55.0 / 57.1 % when
    // issue 12 landed) and for `npm run coverage`, unit and integration only (53.4 / 50.5 / 52.7 / 55.1 %),
    // each less a point: raise them as coverage grows, never lower them.
    coverage: {
      provider: 'v8',
      include: ['src/**/*.ts'],
      reporter: ['text-summary'],
      thresholds: { statements: 52, branches: 49, functions: 51, lines: 54 },
    },
  },
});
