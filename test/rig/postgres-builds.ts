import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

// Where test/rig/fetch-postgres.sh put the server builds of each major (mounted into rig hosts at /opt/pg).
export const PG_CACHE = process.env.PGREP_PG_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "pgrep-test", "postgres");
export const MAJORS = [10, 11, 12, 13, 14, 15, 16, 17, 18] as const;

export function binDirIn(major: number): string {
  return `/opt/pg/${major}/native/bin`;
}

export function missingBuilds(): number[] {
  return MAJORS.filter((m) => !existsSync(join(PG_CACHE, String(m), "native", "bin", "postgres")));
}
