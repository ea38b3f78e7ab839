import { X509Certificate, createPrivateKey } from "node:crypto";
import { mkdtempSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { clusterFromText } from "../../src/inventory/index.js";
import { loadTls } from "../../src/tls/material.js";

// Certificates are checked with Node's own X.509 code, not with the library that made them.

const dir = mkdtempSync(join(tmpdir(), "pgrep-tls-"));
const hosts = `hosts:
  - { name: db1, address: 10.0.0.1, role: primary }
  - { name: db2, address: db2.internal, role: standby }
`;
const spec = (file: string, tls: string, extraHosts = hosts) => clusterFromText(join(dir, file), `cluster: c\npostgres: { major: 15 }\nreplication: { tls: ${tls} }\n${extraHosts}`);

describe("TLS material", () => {
  it("tls: true makes a CA once (key 0600) and a certificate per host naming its address, verify-full", async () => {
    const s = spec("own.yml", "true");
    const m = (await loadTls(s, true))!;
    expect(m.sslmode).toBe("verify-full");
    const ca = new X509Certificate(m.ca);
    expect(ca.ca).toBe(true);
    expect(statSync(join(dir, "own.state", "tls", "ca.key")).mode & 0o777).toBe(0o600);
    const db1 = new X509Certificate(m.hosts.get("db1")!.cert);
    const db2 = new X509Certificate(m.hosts.get("db2")!.cert);
    expect(db1.verify(ca.publicKey)).toBe(true);
    expect(db1.checkIP("10.0.0.1")).toBe("10.0.0.1");
    expect(db2.checkHost("db2.internal")).toBe("db2.internal");
    expect(db2.checkHost("db1")).toBeUndefined();
    expect(db1.checkPrivateKey(createPrivateKey(m.hosts.get("db1")!.key))).toBe(true);
    // Kept: a second load issues nothing new.
    const again = (await loadTls(s, true))!;
    expect(again.ca).toBe(m.ca);
    expect(again.hosts.get("db2")!.cert).toBe(m.hosts.get("db2")!.cert);
    // A changed address gets a new certificate from the same CA.
    const moved = (await loadTls(spec("own.yml", "true", hosts.replace("db2.internal", "10.0.0.9")), true))!;
    expect(new X509Certificate(moved.hosts.get("db2")!.cert).checkIP("10.0.0.9")).toBe("10.0.0.9");
    expect(moved.ca).toBe(m.ca);
  });

  it("a CA of the user's issues the hosts' certificates; given host certificates are used as they are", async () => {
    const own = (await loadTls(spec("own.yml", "true"), true))!;
    const s = spec("given.yml", `{ verify: ca, ca_cert: own.state/tls/ca.crt, ca_key: own.state/tls/ca.key }`);
    const m = (await loadTls(s, true))!;
    expect(m.sslmode).toBe("verify-ca");
    expect(m.ca).toBe(own.ca);
    expect(new X509Certificate(m.hosts.get("db1")!.cert).verify(new X509Certificate(own.ca).publicKey)).toBe(true);
    writeFileSync(join(dir, "db1.crt"), own.hosts.get("db1")!.cert);
    writeFileSync(join(dir, "db1.key"), own.hosts.get("db1")!.key);
    const withGiven = spec("given2.yml", "{ ca_cert: own.state/tls/ca.crt }", hosts.replace("role: primary }", "role: primary, tls: { cert: db1.crt, key: db1.key } }").replace("role: standby }", "role: standby, tls: { cert: db1.crt, key: db1.key } }"));
    const g = (await loadTls(withGiven, true))!;
    expect(g.hosts.get("db1")!.cert).toBe(own.hosts.get("db1")!.cert);
  });

  it("without create, nothing is made: the error says to run setup", async () => {
    await expect(loadTls(spec("none.yml", "true"), false)).rejects.toThrow(/no TLS certificates yet: .*none\.state\/tls\/ca\.crt does not exist/);
  });
});
