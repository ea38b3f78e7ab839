import type { Transport } from "../transport/types.js";

// What a host has before any inventory exists (pgrep init): the PostgreSQL server binaries installed, the
// layout they belong to, and the clusters already there. Read only.

export interface FoundCluster {
  major: number;
  name: string;
  port: number;
  /** "online", "down", "online,recovery" (pg_lsclusters' words). */
  status: string;
  dataDir: string;
}

export interface HostFindings {
  layout: "debian" | "rhel" | "generic";
  /** Majors whose server binaries are installed, newest first. */
  majors: number[];
  clusters: FoundCluster[];
}

const DISCOVER = String.raw`
for d in /usr/lib/postgresql/*/bin /usr/pgsql-*/bin; do
  [ -x "$d/postgres" ] && echo "bin $("$d/postgres" --version | sed -E 's/^[^0-9]*([0-9]+).*/\1/') $d"
done
if command -v pg_lsclusters >/dev/null 2>&1; then echo "layout debian"; pg_lsclusters -h 2>/dev/null | sed 's/^/cluster /'
elif ls -d /usr/pgsql-* >/dev/null 2>&1; then echo "layout rhel"
else echo "layout generic"; fi
exit 0
`;

export async function discoverHost(t: Transport): Promise<HostFindings> {
  const r = await t.run(["sh", "-c", DISCOVER], { user: "root", what: "looking for PostgreSQL" });
  const lines = r.stdout.split("\n").map((l) => l.trim().split(/\s+/));
  const majors = [...new Set(lines.filter((l) => l[0] === "bin" && /^\d+$/.test(l[1] ?? "")).map((l) => Number(l[1])))].sort((a, b) => b - a);
  const layout = (lines.find((l) => l[0] === "layout")?.[1] ?? "generic") as HostFindings["layout"];
  const clusters = lines
    .filter((l) => l[0] === "cluster" && l.length >= 7)
    .map((l) => ({ major: Number(l[1]), name: l[2]!, port: Number(l[3]), status: l[4]!, dataDir: l[6]! }));
  return { layout, majors, clusters };
}
