import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Most tests wait on child processes (engines, rehearsals), not on the CPU: two at a time on CI's two
    // cores, where vitest's default would be one.
    maxWorkers: 2,
    // Results for .ci/run's summary line, beside the usual console report.
    reporters: ['default', ['json', { outputFile: 'test-results/vitest.json' }]],
  },
});
