import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

// The package's own files (templates, the demo inventory), found from wherever this code runs: src/ under
// the tests, dist/ after tsc, or dist/bundle/, the one bundle `npx pgrep` loads. Each is a different depth.

let root: string | undefined;

/** A path inside the installed package: the nearest directory above this code with package.json. */
export function packagePath(...parts: string[]): string {
  if (!root) {
    let dir = dirname(fileURLToPath(import.meta.url));
    while (!existsSync(join(dir, "package.json")) && dirname(dir) !== dir) dir = dirname(dir);
    root = dir;
  }
  return join(root, ...parts);
}
