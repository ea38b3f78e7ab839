import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Rig } from "./rig.js";

// Two clusters on one rig for pgrep migrate (the test and the benchmark): each an inventory of its own
// hosts, wal_level logical (both directions replicate), and the same application role and database, the
// role's password in one file that both read and every host has at /tmp/app.password.

export const APP_PASSWORD = "app pass: with 'quotes' \\ and spaces";

export async function writeAppPassword(rig: Rig): Promise<void> {
  writeFileSync(join(rig.dir, "app.password"), APP_PASSWORD);
  for (const h of rig.hosts.map((x) => x.name)) await rig.sh(h, `printf '%s' '${APP_PASSWORD.replaceAll("'", "'\\''")}' > /tmp/app.password`);
}

export function migrationInventory(rig: Rig, name: string, major: number, hosts: [string, "primary" | "standby"][]): string {
  const file = join(rig.dir, `${name}.yml`);
  writeFileSync(
    file,
    `cluster: ${name}
postgres:
  major: ${major}
  layout: debian
  settings: { wal_level: logical }
ssh: { user: root, identity_file: ${rig.keyFile}, known_hosts: ${rig.knownHostsFile} }
applications:
  roles: [{ name: app, password: { file: ${join(rig.dir, "app.password")} } }]
  databases: [{ name: appdb, owner: app }]
  access: [{ database: appdb, user: app, source: 0.0.0.0/0 }]
hosts:
${hosts.map(([h, role]) => `  - { name: ${h}, address: ${h}, role: ${role}, ssh: { host: ${rig.host(h).sshHost}, port: ${rig.host(h).sshPort} } }`).join("\n")}
`,
  );
  return file;
}

/** SQL in appdb as postgres on a host. */
export const inDb = (rig: Rig, h: string, sql: string) => rig.sh(h, `runuser -u postgres -- psql -XAtq -d appdb -c "${sql}"`).then((s) => s.trim());
