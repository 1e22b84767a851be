import { defineConfig } from 'vitest/config';

// Tests attach XDP programs, create namespaces and run BPF_PROG_TEST_RUN: they need root and a
// process of their own (native addon, netns switching), and they must not race for the 2 CPUs.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
