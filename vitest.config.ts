import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Results for .ci/run's summary line, beside the usual console report.
    reporters: ['default', ['json', { outputFile: 'test-results/vitest.json' }]],
  },
});
