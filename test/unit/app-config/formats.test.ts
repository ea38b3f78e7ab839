import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { APP_FORMATS, appConfig, type AppConfigOptions } from "../../../src/app-config/formats.js";
import { clusterFromText } from "../../../src/inventory/index.js";

// Each format is read by what reads it in an application: Ruby's ERB and YAML (Rails, makara, octopus),
// sh (an env file), libpq's own parser (URIs, through the pg gem).

const spec = clusterFromText(
  "/inv/shop.yml",
  `cluster: shop
postgres: { major: 15 }
hosts:
  - { name: db1, address: 10.0.0.1, app_address: db1.example.com, role: primary }
  - { name: db-2, address: 10.0.0.2, role: standby }
  - { name: db3, address: "fd00::3", role: standby, postgres: { port: 5433 }, failover: { priority: 200 } }
`,
);
const base: AppConfigOptions = { user: "shop", database: "shop db", passwordEnv: "SHOP_PW", password: undefined, environment: "production", eachStandby: true, maxLagSeconds: 10, stickySeconds: 2 };
/** Every character YAML, ERB, sh, a URI or libpq treat specially, and a line break. */
const NASTY = `shop pw: "quoted" #x 'it''s' <%= 6*7 %> %> \${HOME} $(id) \`id\` \\ \\n é @/:?&=%+,;[]{}|*!~\ttab\nline`;
const dir = mkdtempSync(join(tmpdir(), "pgrep-app-config-"));

function ruby(args: string[], env: Record<string, string> = {}): unknown {
  const r = spawnSync("ruby", ["test/unit/app-config/read.rb", ...args], { encoding: "utf8", env: { ...process.env, ...env } });
  expect(r.status, `${r.stderr}${r.error ?? ""}`).toBe(0);
  return JSON.parse(r.stdout);
}

/** The YAML as Rails loads it: ERB first (with the password's variable set), then YAML. */
function loaded(text: string, env: Record<string, string> = { SHOP_PW: NASTY }): any {
  const file = join(dir, "database.yml");
  writeFileSync(file, text);
  return ruby(["yaml", file], env);
}

/** The env file as sh reads it: each variable's value. */
function sourced(text: string, env: Record<string, string> = { SHOP_PW: NASTY }): Record<string, string> {
  const file = join(dir, "app.env");
  writeFileSync(file, `${text}\n`);
  const r = spawnSync("sh", ["-c", `set -a; . ${file}; node -e 'process.stdout.write(JSON.stringify(process.env))'`], { encoding: "utf8", env: { PATH: process.env.PATH!, ...env } });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Record<string, string>;
}

const conninfo = (uri: string) => ruby(["conninfo", uri]) as Record<string, string>;

describe("app-config", () => {
  it("rails: the writer lists every host (read-write), readers the standbys then the primary (prefer-standby), one entry per standby when asked", () => {
    const y = loaded(appConfig(spec, "rails", base)).production;
    expect(y.primary).toEqual({ adapter: "postgresql", host: "db1.example.com,fd00::3,10.0.0.2", port: "5432,5433,5432", target_session_attrs: "read-write", connect_timeout: 5, database: "shop db", username: "shop", password: NASTY });
    expect(y.primary_replica).toMatchObject({ host: "10.0.0.2,fd00::3,db1.example.com", port: "5432,5433,5432", replica: true, target_session_attrs: "prefer-standby", connect_timeout: 5 });
    expect(y.primary_replica_db_2).toMatchObject({ host: "10.0.0.2", port: 5432, replica: true, password: NASTY });
    expect(Object.keys(y)).toEqual(["primary", "primary_replica", "primary_replica_db_2", "primary_replica_db3"]);
  });

  it("an unset password variable gives no password (null), not a parse error", () => {
    expect(loaded(appConfig(spec, "rails", base), {}).production.primary.password).toBeNull();
  });

  it("makara: the master lists every host; the slaves one standby each; octopus says what database.yml's master needs", () => {
    const m = loaded(appConfig(spec, "makara", base)).production;
    expect(m.adapter).toBe("postgresql_makara");
    expect(m.password).toBe(NASTY);
    expect(m.makara.connections.map((c: { role: string; host: string }) => `${c.role}:${c.host}`)).toEqual(["master:db1.example.com,fd00::3,10.0.0.2", "slave:10.0.0.2", "slave:fd00::3"]);
    expect(m.makara.connections[0]).toMatchObject({ target_session_attrs: "read-write", port: "5432,5433,5432" });
    const text = appConfig(spec, "octopus", base);
    const o = loaded(text).octopus;
    expect(o).toMatchObject({ replicated: true, fully_replicated: true, environments: ["production"] });
    expect(Object.keys(o.production)).toEqual(["db_2", "db3"]);
    expect(o.production.db3.password).toBe(NASTY);
    expect(text).toMatch(/^# {3}host: "db1\.example\.com,fd00::3,10\.0\.0\.2"\n# {3}port: "5432,5433,5432"\n# {3}target_session_attrs: read-write$/m);
  });

  it("env: sh reads URLs without the password and PGPASSWORD with it intact; libpq reads the URLs", () => {
    const v = sourced(appConfig(spec, "env", base));
    expect(v.PGPASSWORD).toBe(NASTY);
    expect(conninfo(v.DATABASE_URL!)).toEqual({ user: "shop", dbname: "shop db", host: "db1.example.com,fd00::3,10.0.0.2", port: "5432,5433,5432", target_session_attrs: "read-write", connect_timeout: "5" });
    expect(conninfo(v.DATABASE_REPLICA_URL!)).toMatchObject({ host: "10.0.0.2,fd00::3,db1.example.com", target_session_attrs: "prefer-standby" });
    expect(conninfo(v.DATABASE_REPLICA_DB_2_URL!)).toEqual({ user: "shop", dbname: "shop db", host: "10.0.0.2", port: "5432" });
  });

  it("uri: every host, the primary first, read-write; IPv6 in brackets; names encoded", () => {
    expect(appConfig(spec, "uri", base)).toBe("postgresql://shop@db1.example.com:5432,[fd00::3]:5433,10.0.0.2:5432/shop%20db?target_session_attrs=read-write&connect_timeout=5");
  });

  it("passwords appear only when given; then every format carries them intact, as its reader reads them", () => {
    for (const f of APP_FORMATS) expect(appConfig(spec, f, base)).not.toContain("quoted");
    const withSecret = { ...base, password: NASTY };
    // With the variable unset: the value comes from the file alone.
    expect(loaded(appConfig(spec, "rails", withSecret), {}).production.primary.password).toBe(NASTY);
    expect(loaded(appConfig(spec, "makara", withSecret), {}).production.password).toBe(NASTY);
    expect(loaded(appConfig(spec, "octopus", withSecret), {}).octopus.production.db_2.password).toBe(NASTY);
    const v = sourced(appConfig(spec, "env", withSecret), {});
    expect(v.PGPASSWORD).toBeUndefined();
    for (const k of ["DATABASE_URL", "DATABASE_REPLICA_URL", "DATABASE_REPLICA_DB3_URL"]) expect(conninfo(v[k]!).password, k).toBe(NASTY);
    expect(conninfo(appConfig(spec, "uri", withSecret)).password).toBe(NASTY);
  });

  it("--password-env names only a variable", async () => {
    const { appConfigCommand } = await import("../../../src/commands/app-config.js");
    await expect(appConfigCommand({ inventory: "/nonexistent.yml", format: "env", user: undefined, database: undefined, passwordEnv: 'X}"; rm -rf / #', withSecrets: false, environment: "production", eachStandby: false, maxLagSeconds: undefined, stickySeconds: 2, out: undefined }, undefined as never)).rejects.toThrow(/is not an environment variable's name/);
  });

  it("rails-initializer: the middleware with the lag-aware resolver, the limits from the options, valid Ruby", () => {
    const rb = appConfig(spec, "rails-initializer", { ...base, maxLagSeconds: 8, stickySeconds: 3 });
    expect(rb).toContain("MAX_LAG_SECONDS = 8");
    expect(rb).toContain("CACHE_SECONDS = 1");
    expect(rb).toMatch(/middleware\.use ActiveRecord::Middleware::DatabaseSelector, Pgrep::Resolver,\n\s+ActiveRecord::Middleware::DatabaseSelector::Resolver::Session, \{ delay: 3 \}/);
    expect(rb).toContain("super || !ReplicaLag.within_limit?");
    // A small limit is checked more often than once a second.
    expect(appConfig(spec, "rails-initializer", { ...base, maxLagSeconds: 2, stickySeconds: 2 })).toContain("CACHE_SECONDS = 0.5");
    // A line break in the inventory's path stays inside its comment.
    const odd = clusterFromText("/inv/a\nb.yml", "cluster: shop\npostgres: { major: 15 }\nhosts:\n  - { name: db1, address: 10.0.0.1, role: primary }\n");
    for (const text of [rb, appConfig(odd, "rails-initializer", base)]) {
      const check = spawnSync("ruby", ["-c", "-e", text], { encoding: "utf8" });
      expect(check.stdout.trim(), `${check.stderr}${check.error ?? ""}`).toBe("Syntax OK");
    }
    expect(loaded(appConfig(odd, "rails", base)).production.primary.host).toBe("10.0.0.1");
  });

  it("makara sticks to the master after a write for the sticky seconds", () => {
    expect(loaded(appConfig(spec, "makara", { ...base, stickySeconds: 4 })).production.makara).toMatchObject({ sticky: true, master_ttl: 4, blacklist_duration: 30 });
  });
});
