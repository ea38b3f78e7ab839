import { spawnSync } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { cpSync, readFileSync, statSync, writeFileSync } from "node:fs";
import forge from "node-forge";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pgrep } from "../cli.js";
import { Rig } from "../rig/rig.js";

// Replication over TLS on real hosts, pgrep's own CA: pg2 streams from pg1 and pg3 from pg2 (cascading),
// each verifying its upstream's certificate. Then the same cluster with md5 passwords, asked for.
// The tests run in order on the cluster the first one builds.

let rig: Rig;
let inv: string;

const tlsOf = (h: string) =>
  rig.psql(h, "SELECT coalesce(string_agg(r.application_name || ':' || s.ssl || ':' || coalesce(s.version, '-'), ',' ORDER BY r.application_name), '') FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)");

/** psql from `from` as the replication user, with the cluster's .pgpass; resolves to its output or rejects with the error. */
const connect = (from: string, conninfo: string) =>
  rig.sh(from, `runuser -u postgres -- psql -X -A -t -d "${conninfo} user=replicator dbname=postgres" -c 'SELECT 1' 2>&1`);

describe("replication over TLS", () => {
  beforeAll(async () => {
    rig = await Rig.start(["pg1", "pg2", "pg3"]);
    inv = rig.inventory({ primary: "pg1", upstreams: { pg3: "pg2" }, extraTop: "replication: { tls: true }" });
  });
  afterAll(async () => {
    await rig?.stop();
  });

  it("setup issues certificates from its own CA, and every walsender connection is encrypted", async () => {
    const r = await pgrep(["setup", "-i", inv]);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/\[pg2\] write the CA, this host's certificate and its key \(0600\) to \/var\/lib\/postgresql\/\.pgrep-tls\/pg2/);
    expect(await tlsOf("pg1")).toMatch(/^pg2:true:TLSv1\.[23]$/);
    expect(await tlsOf("pg2")).toMatch(/^pg3:true:TLSv1\.[23]$/);
    expect(await rig.sh("pg2", "cat /etc/postgresql/15/main/conf.d/pgrep.conf")).toMatch(
      /^primary_conninfo = 'host=pg1 port=5432 user=replicator passfile=\/var\/lib\/postgresql\/\.pgpass application_name=pg2 sslmode=verify-full sslrootcert=\/var\/lib\/postgresql\/\.pgrep-tls\/pg2\/ca\.crt'$/m,
    );
    expect(await rig.sh("pg1", "grep replicator /etc/postgresql/15/main/pg_hba.conf")).toMatch(/^hostssl replication    replicator    [\d.]+\/32    scram-sha-256/m);
    expect(await rig.sh("pg1", "stat -c '%a %U' /var/lib/postgresql/.pgrep-tls/pg1/server.key /var/lib/postgresql/.pgrep-tls/pg1")).toBe("600 postgres\n700 postgres\n");
    expect(statSync(join(rig.dir, "rig.state", "tls", "ca.key")).mode & 0o777).toBe(0o600);
    const again = await pgrep(["setup", "-i", inv]);
    expect(again.stderr).toMatch(/Nothing to change/);
  });

  it("a private key travels on stdin only: sent again while every process and log is watched for it and the password", async () => {
    const keyLines = readFileSync(join(rig.dir, "rig.state", "tls", "pg2.key"), "utf8").split("\n").filter((l) => l && !l.startsWith("-----"));
    const password = readFileSync(join(rig.dir, "rig.state", "replication-password"), "utf8").trim();
    await rig.sh("pg2", "rm /var/lib/postgresql/.pgrep-tls/pg2/server.key");
    const watch = await rig.watchForSecrets(["pg1", "pg2", "pg3"], [password, ...keyLines]);
    const r = await pgrep(["setup", "-i", inv]);
    expect(await watch.stop()).toEqual([]);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/\[pg2\] write the CA, this host's certificate and its key \(0600\)/);
    expect(await rig.sh("pg2", "stat -c '%a %U' /var/lib/postgresql/.pgrep-tls/pg2/server.key")).toBe("600 postgres\n");
  });

  it("the primary refuses an unencrypted replication connection, and the standby's check is a real one", async () => {
    await expect(connect("pg2", "host=pg1 sslmode=disable")).rejects.toThrow(/no pg_hba\.conf entry for host .* user "replicator", database "postgres", no encryption/);
    // verify-full: the certificate names pg1, not its IP address.
    const ip = (await rig.sh("pg2", "getent hosts pg1 | cut -d' ' -f1")).trim();
    await expect(connect("pg2", `host=${ip} sslmode=verify-full sslrootcert=/var/lib/postgresql/.pgrep-tls/pg2/ca.crt`)).rejects.toThrow(/server certificate for "pg1" .*does not match host name/);
    expect(await connect("pg2", "host=pg1 sslmode=verify-full sslrootcert=/var/lib/postgresql/.pgrep-tls/pg2/ca.crt")).toBe("1\n");
  });

  it("a certificate replaced on a host is put back by setup, and the server uses it", async () => {
    await rig.sh("pg1", "cp /var/lib/postgresql/.pgrep-tls/pg3/server.crt /var/lib/postgresql/.pgrep-tls/pg1/server.crt 2>/dev/null || echo junk > /var/lib/postgresql/.pgrep-tls/pg1/server.crt");
    const r = await pgrep(["setup", "-i", inv]);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/\[pg1\] write the CA, this host's certificate/);
    expect(r.stderr).toMatch(/\[pg1\] reload PostgreSQL — use the new certificate/);
    expect(await connect("pg2", "host=pg1 sslmode=verify-full sslrootcert=/var/lib/postgresql/.pgrep-tls/pg2/ca.crt")).toBe("1\n");
  });

  it("md5 only when asked: the role's password becomes an md5 verifier, pg_hba says md5, and standbys still connect", async () => {
    expect(await rig.psql("pg1", "SELECT left(rolpassword, 14) FROM pg_authid WHERE rolname = 'replicator'")).toBe("SCRAM-SHA-256$");
    const md5 = rig.inventory({ primary: "pg1", upstreams: { pg3: "pg2" }, extraTop: "replication: { tls: true, password_encryption: md5 }" });
    const r = await pgrep(["setup", "-i", md5]);
    expect(r.exitCode, r.all).toBe(0);
    expect(await rig.psql("pg1", "SELECT left(rolpassword, 3) FROM pg_authid WHERE rolname = 'replicator'")).toBe("md5");
    const hba = (await rig.sh("pg1", "grep '^hostssl' /etc/postgresql/15/main/pg_hba.conf")).trim().split("\n");
    expect(hba.length).toBeGreaterThanOrEqual(6);
    for (const line of hba) expect(line).toMatch(/^hostssl (replication|postgres) +replicator +[\d.]+\/32 +md5 /);
    await rig.sh("pg2", "pg_ctlcluster 15 main restart");
    const s = await pgrep(["wait", "-i", md5, "--timeout", "60"]);
    expect(s.exitCode, s.all).toBe(0);
    expect(await tlsOf("pg1")).toMatch(/^pg2:true:/);
  });

  it("applications over TLS: their rules are hostssl on every host, and a client certificate is required where the rule asks", async () => {
    const apps = `replication: { tls: true }
applications:
  roles: [{ name: app, password: { env: APP_TLS_PASSWORD } }]
  databases: [{ name: app, owner: app }]
  access:
    - { database: app, user: app, source: samenet, client_cert: verify-full }`;
    const file = rig.inventory({ primary: "pg1", upstreams: { pg3: "pg2" }, extraTop: apps, file: "apps-tls.yml" });
    cpSync(join(rig.dir, "rig.state"), join(rig.dir, "apps-tls.state"), { recursive: true });
    const password = `app-${randomBytes(9).toString("base64url")}`;
    const r = await pgrep(["setup", "-i", file], { APP_TLS_PASSWORD: password });
    expect(r.exitCode, r.all).toBe(0);
    for (const h of ["pg1", "pg3"]) expect(await rig.sh(h, "cat /etc/postgresql/15/main/pg_hba.conf")).toMatch(/^hostssl app    app    samenet    scram-sha-256 clientcert=verify-full    # applications\.access\[0\]$/m);

    // A client certificate for the role (verify-full: its CN is the user name), signed by the cluster's CA.
    const tls = join(rig.dir, "apps-tls.state", "tls");
    const caCert = forge.pki.certificateFromPem(readFileSync(join(tls, "ca.crt"), "utf8"));
    const caKey = forge.pki.privateKeyFromPem(readFileSync(join(tls, "ca.key"), "utf8"));
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048, privateKeyEncoding: { type: "pkcs8", format: "pem" }, publicKeyEncoding: { type: "spki", format: "pem" } });
    const c = forge.pki.createCertificate();
    c.serialNumber = "01";
    c.validity.notBefore = new Date(Date.now() - 3600_000);
    c.validity.notAfter = new Date(Date.now() + 3600_000);
    c.setSubject([{ name: "commonName", value: "app" }]);
    c.setIssuer(caCert.subject.attributes);
    c.publicKey = forge.pki.publicKeyFromPem(publicKey);
    c.sign(caKey as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
    writeFileSync(join(rig.dir, "app.crt"), forge.pki.certificateToPem(c));
    writeFileSync(join(rig.dir, "app.key"), privateKey, { mode: 0o600 });

    const ip = (h: string) => rig.host(h).container.getIpAddress(rig.network.getName());
    const psql = (h: string, extra: string) =>
      spawnSync("psql", [`host=${ip(h)} dbname=app user=app sslrootcert=${join(tls, "ca.crt")} ${extra}`, "-XAtc", "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"], {
        encoding: "utf8",
        env: { ...process.env, PGPASSWORD: password, HOME: rig.dir },
      });
    const withCert = `sslmode=verify-ca sslcert=${join(rig.dir, "app.crt")} sslkey=${join(rig.dir, "app.key")}`;
    for (const h of ["pg1", "pg3"]) {
      const ok = psql(h, withCert);
      expect(ok.stdout.trim(), ok.stderr).toBe("t");
    }
    expect(psql("pg1", "sslmode=verify-ca").stderr).toMatch(/connection requires a valid client certificate/);
    expect(psql("pg1", "sslmode=disable").stderr).toMatch(/no pg_hba\.conf entry for host .* user "app", database "app", no encryption/);
  });
});
