import { defineConfig } from 'vitest/config';

// Unit tests live next to the code (packages/*/src/**/*.test.ts); multi-process, fault and
// end-to-end tests live in test/. Both import the built packages (run `pnpm build` first;
// `pnpm test` does), so multi-process tests run exactly the code a user runs.
//
// Two projects, run one after the other (sequence.groupOrder): unit tests run in-process on one
// core each, so their files run on every core at once; the system tests start their own worker
// processes (which use every core) and time heartbeats and failures, so their files run one at a
// time, after the unit tests, with the machine to themselves. Tests a file marks concurrent
// (mostly waiting for a timeout to detect a failure) run at most 3 at a time.
const shared = { testTimeout: 60_000, hookTimeout: 60_000, pool: 'forks' as const };
export default defineConfig({
  test: {
    exclude: ['**/node_modules/**', '**/dist/**'],
    projects: [
      {
        test: { ...shared, name: 'unit', maxWorkers: '100%', include: ['packages/*/src/**/*.test.ts'], exclude: ['**/node_modules/**', '**/dist/**'], sequence: { groupOrder: 0 } },
      },
      {
        test: { ...shared, name: 'system', include: ['test/**/*.test.ts'], exclude: ['**/node_modules/**', '**/dist/**'], fileParallelism: false, maxConcurrency: 3, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
