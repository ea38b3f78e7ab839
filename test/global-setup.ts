import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";

// The tests run the CLI as a user installs it: what `npm pack` ships (its files list, its bin, the
// templates), installed with its dependencies into a temporary directory — not the work tree's dist/.
// `npm test` builds first (pretest); the pack itself runs no scripts.

declare module "vitest" {
  export interface ProvidedContext {
    /** The installed package's bin, as `npm install` linked it. */
    installedCli: string;
  }
}

export default function setup(project: TestProject): () => void {
  const root = process.cwd();
  const dir = mkdtempSync(join(tmpdir(), "pgrep-installed-"));
  const packed = execFileSync("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", dir], { cwd: root, encoding: "utf8" });
  const tarball = join(dir, (JSON.parse(packed) as { filename: string }[])[0]!.filename);
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "pgrep-installed", private: true }));
  // The dependencies come from npm's cache (npm ci filled it); the registry only for what it lacks.
  execFileSync("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error", tarball], { cwd: dir, stdio: ["ignore", "ignore", "inherit"] });
  project.provide("installedCli", join(dir, "node_modules", ".bin", "pgrep"));
  return () => rmSync(dir, { recursive: true, force: true });
}
