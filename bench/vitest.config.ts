import { defineConfig } from "vitest/config";

// The benchmark is one long run on the container rig; vitest only hosts it (TypeScript, the rig helpers).
export default defineConfig({
  test: {
    include: ["bench/**/*.bench-run.ts"],
    env: { TESTCONTAINERS_RYUK_DISABLED: "true" },
    // The CLI measured is the packed package, as the tests run it.
    globalSetup: ["./test/global-setup.ts"],
    // One rig at a time: two would share the two cores and slow each other down.
    fileParallelism: false,
    testTimeout: 3_600_000,
    hookTimeout: 600_000,
  },
});
