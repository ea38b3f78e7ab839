import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The reaper image cannot be pulled without a registry; the rig removes its own containers.
    env: { TESTCONTAINERS_RYUK_DISABLED: "true" },
    // Two cores: integration files share the machine's ports and CPU, so they run one at a time within a
    // vitest run; npm test runs two of those at once (test/run.mjs): the majors file beside the others.
    fileParallelism: false,
    testTimeout: 240_000,
    hookTimeout: 240_000,
    reporters: ["default", "./test/summary-reporter.ts"],
    // The CLI the tests run is the packed package, installed in a temporary directory.
    globalSetup: ["./test/global-setup.ts"],
  },
});
