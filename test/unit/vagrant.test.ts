import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { loadCluster } from "../../src/inventory/index.js";

// vagrant/Vagrantfile and inventories/vagrant.yml describe the same three machines. The Vagrantfile is
// run by Ruby with a stand-in for Vagrant (test/unit/vagrant-check.rb), so what is compared is what
// Vagrant would be told, not a pattern in the text.

describe("the Vagrant rig", () => {
  it("parses (ruby -c)", () => {
    const r = spawnSync("ruby", ["-c", "vagrant/Vagrantfile"], { encoding: "utf8" });
    expect(r.error, "ruby is needed (test/rig/prepare.sh installs it)").toBeUndefined();
    expect(r.stdout.trim(), r.stderr).toBe("Syntax OK");
  });

  it("defines the machines inventories/vagrant.yml names, at its addresses, on Debian bookworm with SSH on 22", async () => {
    const r = spawnSync("ruby", ["test/unit/vagrant-check.rb", "vagrant/Vagrantfile"], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    const v = JSON.parse(r.stdout) as { box: string; machines: { name: string; hostname: string; networks: { kind: string; ip?: string }[] }[] };
    expect(v.box).toMatch(/bookworm/);
    const spec = await loadCluster("inventories/vagrant.yml");
    const fromVagrant = v.machines.map((m) => ({ name: m.name, hostname: m.hostname, address: m.networks.find((n) => n.kind === "private_network")?.ip }));
    const fromInventory = spec.hosts.map((h) => ({ name: h.name, hostname: h.name, address: h.address }));
    expect(fromVagrant).toEqual(fromInventory);
    for (const h of spec.hosts) {
      expect(h.connection).toMatchObject({ kind: "ssh", host: h.address, port: 22, user: "vagrant" });
      expect(h.pg).toMatchObject({ major: 15, layout: "debian", port: 5432 });
    }
    // The inventory's major is the one the machines get.
    expect(readFileSync("vagrant/Vagrantfile", "utf8")).toMatch(new RegExp(`apt-get install [^\\n]*postgresql-${spec.primary.pg.major}\\b`));
    expect(spec.primary.name).toBe("db1");
    expect(spec.standbys.map((h) => h.name)).toEqual(["db2", "db3"]);
  });
});
