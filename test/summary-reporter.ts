import type { Reporter, TestModule } from "vitest/node";

// Ends the run with the slowest files (where the suite's time goes, to keep it under ~20 minutes) and one
// plain line, "tests: N passed, N failed, N skipped", that any log reader can count.
export default class SummaryReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const m of modules) {
      for (const t of m.children.allTests()) {
        const state = t.result().state;
        if (state === "passed") passed++;
        else if (state === "failed") failed++;
        else skipped++;
      }
      if (m.state() === "failed" && [...m.children.allTests()].length === 0) failed++; // a file that did not load
    }
    const slowest = [...modules]
      .map((m) => ({ file: m.moduleId.replace(`${process.cwd()}/`, ""), s: m.diagnostic().duration / 1000 }))
      .sort((a, b) => b.s - a.s)
      .slice(0, 6);
    process.stdout.write(`\nslowest files:\n${slowest.map((x) => `  ${x.s.toFixed(0).padStart(5)} s  ${x.file}`).join("\n")}\n`);
    process.stdout.write(`\ntests: ${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  }
}
