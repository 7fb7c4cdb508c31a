import { defineConfig } from 'vitest/config';

// Unit tests live next to the code (packages/*/src/**/*.test.ts); multi-process, fault and
// end-to-end tests live in test/. Both import the built packages (run `pnpm build` first;
// `pnpm test` does), so multi-process tests run exactly the code a user runs.
export default defineConfig({
  test: {
    include: ['packages/*/src/**/*.test.ts', 'test/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
