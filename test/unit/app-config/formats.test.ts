import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { APP_FORMATS, appConfig, type AppConfigOptions } from "../../../src/app-config/formats.js";
import { clusterFromText } from "../../../src/inventory/index.js";

const spec = clusterFromText(
  "/inv/shop.yml",
  `cluster: shop
postgres: { major: 15 }
hosts:
  - { name: db1, address: 10.0.0.1, app_address: db1.example.com, role: primary }
  - { name: db-2, address: 10.0.0.2, role: standby }
  - { name: db3, address: "fd00::3", role: standby, postgres: { port: 5433 } }
`,
);
const base: AppConfigOptions = { user: "shop", database: "shop db", passwordEnv: "SHOP_PW", password: undefined, environment: "production", eachStandby: true, maxLagSeconds: 10, stickySeconds: 2 };
const secret = "p@ss:w/rd\"'";
// What ERB would make of the references, so that the YAML can be read here.
const erb = (text: string) => text.replace(/<%= ENV\["SHOP_PW"\] %>/g, "from-env");

describe("app-config", () => {
  it("rails: a writing primary (read-write) and a primary_replica over the standbys, one entry per standby when asked", () => {
    const y = parse(erb(appConfig(spec, "rails", base))) as Record<string, Record<string, Record<string, unknown>>>;
    expect(y.production!.primary).toMatchObject({ adapter: "postgresql", host: "db1.example.com", port: 5432, database: "shop db", username: "shop", password: "from-env", target_session_attrs: "read-write" });
    expect(y.production!.primary_replica).toMatchObject({ host: "10.0.0.2,fd00::3", port: "5432,5433", replica: true, target_session_attrs: "prefer-standby" });
    expect(y.production!.primary_replica_db_2).toMatchObject({ host: "10.0.0.2", replica: true });
    expect(Object.keys(y.production!)).toEqual(["primary", "primary_replica", "primary_replica_db_2", "primary_replica_db3"]);
  });

  it("makara and octopus name the primary as master and the standbys as replicas", () => {
    const m = parse(erb(appConfig(spec, "makara", base))) as { production: { adapter: string; makara: { connections: { role: string; host: string }[] } } };
    expect(m.production.adapter).toBe("postgresql_makara");
    expect(m.production.makara.connections.map((c) => `${c.role}:${c.host}`)).toEqual(["master:db1.example.com", "slave:10.0.0.2", "slave:fd00::3"]);
    const o = parse(erb(appConfig(spec, "octopus", base))) as { octopus: Record<string, unknown> };
    expect(o.octopus).toMatchObject({ replicated: true, fully_replicated: true, environments: ["production"] });
    expect(Object.keys(o.octopus.production as object)).toEqual(["db_2", "db3"]);
  });

  it("env and uri: libpq URIs with target_session_attrs; IPv6 in brackets; names encoded", () => {
    const env = appConfig(spec, "env", base);
    expect(env).toContain("DATABASE_URL=postgresql://shop:${SHOP_PW}@db1.example.com:5432/shop%20db?target_session_attrs=read-write");
    expect(env).toContain("DATABASE_REPLICA_URL=postgresql://shop:${SHOP_PW}@10.0.0.2:5432,[fd00::3]:5433/shop%20db?target_session_attrs=prefer-standby");
    expect(env).toContain("DATABASE_REPLICA_DB_2_URL=");
    expect(appConfig(spec, "uri", base)).toBe("postgresql://shop@db1.example.com:5432,10.0.0.2:5432,[fd00::3]:5433/shop%20db?target_session_attrs=read-write");
  });

  it("passwords appear only when given, and quoted or encoded so that they survive", () => {
    for (const f of APP_FORMATS) expect(appConfig(spec, f, base)).not.toContain("p@ss");
    const withSecret = { ...base, password: secret };
    const y = parse(appConfig(spec, "rails", withSecret)) as Record<string, Record<string, Record<string, unknown>>>;
    expect(y.production!.primary!.password).toBe(secret);
    expect(new URL(appConfig(spec, "uri", withSecret).replace(/,.*\//, "/")).password).toBe(encodeURIComponent(secret));
  });

  it("rails-initializer: the middleware with the lag-aware resolver, the limits from the options, valid Ruby", () => {
    const rb = appConfig(spec, "rails-initializer", { ...base, maxLagSeconds: 8, stickySeconds: 3 });
    expect(rb).toContain("MAX_LAG_SECONDS = 8");
    expect(rb).toContain("CACHE_SECONDS = 1");
    expect(rb).toMatch(/middleware\.use ActiveRecord::Middleware::DatabaseSelector, Pgrep::Resolver,\n\s+ActiveRecord::Middleware::DatabaseSelector::Resolver::Session, \{ delay: 3 \}/);
    expect(rb).toContain("super || !ReplicaLag.within_limit?");
    // A small limit is checked more often than once a second.
    expect(appConfig(spec, "rails-initializer", { ...base, maxLagSeconds: 2, stickySeconds: 2 })).toContain("CACHE_SECONDS = 0.5");
    const check = spawnSync("ruby", ["-c", "-e", rb], { encoding: "utf8" });
    if (!check.error) expect(check.stdout.trim(), check.stderr).toBe("Syntax OK");
  });

  it("makara sticks to the master after a write for the sticky seconds", () => {
    const y = parse(erb(appConfig(spec, "makara", { ...base, stickySeconds: 4 }))) as Record<string, Record<string, Record<string, unknown>>>;
    expect(y.production!.makara).toMatchObject({ sticky: true, master_ttl: 4, blacklist_duration: 30 });
  });
});
