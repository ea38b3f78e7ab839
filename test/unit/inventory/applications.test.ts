import { describe, expect, it } from "vitest";
import { load as loadText, problems as problemsOf } from "./inventory-text.js";
import { checkSource } from "../../../src/inventory/access.js";

const head = (major = 15, tls = false) => `cluster: shop
postgres: { major: ${major} }
replication: { tls: ${tls} }
hosts:
  - { name: db1, address: 10.0.0.1, role: primary }
  - { name: db2, address: 10.0.0.2, role: standby }
`;

const load = (text: string) => loadText(text, "/srv/shop.yml");
const problems = (text: string) => problemsOf(text, "/srv/shop.yml");

describe("applications in the inventory", () => {
  it("resolves roles, databases and rules; a role without a password source gets a generated one", () => {
    const spec = load(`${head()}applications:
  max_lag_seconds: 5
  roles:
    - { name: shop, password: { env: SHOP_PW } }
    - { name: reports }
  databases:
    - { name: shop, owner: shop, encoding: utf8, locale: C.UTF-8, connect: [shop, reports] }
  access:
    - { database: shop, user: [shop, reports], source: 10.1.0.0/16 }
    - { database: shop, user: reports, source: 192.168.7.9, method: md5 }
    - { database: all, user: +staff, source: .corp.example.com }
    - { database: shop, user: shop, source: samenet }
`);
    expect(spec.apps.maxLagSeconds).toBe(5);
    expect(spec.apps.roles).toEqual([
      { name: "shop", password: { kind: "env", name: "SHOP_PW" } },
      { name: "reports", password: { kind: "generated", path: "/srv/shop.state/role-reports-password" } },
    ]);
    expect(spec.apps.databases[0]).toEqual({ name: "shop", owner: "shop", encoding: "UTF8", locale: "C.UTF-8", connect: ["shop", "reports"] });
    expect(spec.apps.access.map((r) => [r.database, r.user, r.source, r.method])).toEqual([
      ["shop", "shop,reports", "10.1.0.0/16", "scram-sha-256"],
      ["shop", "reports", "192.168.7.9/32", "md5"],
      ["all", "+staff", ".corp.example.com", "scram-sha-256"],
      ["shop", "shop", "samenet", "scram-sha-256"],
    ]);
  });

  it("a bad rule is a line-precise error naming the key", () => {
    const text = `${head()}applications:
  access:
    - { database: shop, user: shop, source: 10.0.0.0/8 }
    - { database: shop, user: shop, source: 10.0.0.300/8 }
    - { database: shop, user: shop, source: 10.1.2.3/8 }
    - { database: shop, user: shop, source: "10.0.0.0/33" }
    - { database: replication, user: shop, source: 10.0.0.0/8 }
    - { database: shop, user: "sh op", source: 10.0.0.0/8 }
    - { database: shop, user: shop, source: "bad_host!" }
`;
    expect(problems(text)).toEqual([
      "/srv/shop.yml:10:45: applications.access[1].source: '10.0.0.300/8' is not a CIDR address (like 10.0.0.0/8 or fd00::/8)",
      "/srv/shop.yml:11:45: applications.access[2].source: '10.1.2.3/8' has bits set beyond its /8 prefix; write the network address (like 10.0.0.0/8)",
      "/srv/shop.yml:12:45: applications.access[3].source: '10.0.0.0/33': the prefix length must be 0–32",
      "/srv/shop.yml:13:19: applications.access[4].database: replication connections are pgrep's own (replication.user); name the application's database",
      "/srv/shop.yml:14:31: applications.access[5].user: 'sh op' is not a role name, +group or all",
      "/srv/shop.yml:15:45: applications.access[6].source: 'bad_host!' is neither an address, a host name, samenet, samehost nor all",
    ]);
  });

  it("refuses trust from everywhere unless allow_open says it is meant", () => {
    const open = (extra: string) => `${head()}applications:\n  access:\n    - { database: all, user: all, source: 0.0.0.0/0, method: trust${extra} }\n`;
    expect(problems(open(""))).toEqual([
      "/srv/shop.yml:9:62: applications.access[0].method: trust from 0.0.0.0/0 lets anyone in without a password; if that is really meant, add allow_open: true to this rule",
    ]);
    expect(load(open(", allow_open: true")).apps.access[0]!.method).toBe("trust");
    // trust from one subnet is the operator's call.
    expect(load(`${head()}applications:\n  access:\n    - { database: all, user: all, source: 10.9.0.0/16, method: trust }\n`).apps.access).toHaveLength(1);
  });

  it("client certificates need TLS; verify-full needs PostgreSQL 12+", () => {
    const rule = "    - { database: shop, user: shop, source: samenet, client_cert: verify-full }\n";
    expect(problems(`${head()}applications:\n  access:\n${rule}`)[0]).toMatch(/client_cert: client_cert needs TLS: set replication\.tls/);
    expect(problems(`${head(11, true)}applications:\n  access:\n${rule}`)[0]).toMatch(/PostgreSQL 11 can only verify a client certificate's CA \(client_cert: verify-ca\); verify-full needs 12\+/);
    expect(load(`${head(15, true)}applications:\n  access:\n${rule}`).apps.access[0]!.clientCert).toBe("verify-full");
  });

  it("roles and databases: no duplicates, not the replication role, not PostgreSQL's own databases", () => {
    const text = `${head()}applications:
  roles:
    - { name: shop }
    - { name: shop }
    - { name: replicator }
  databases:
    - { name: postgres, owner: shop }
`;
    expect(problems(text)).toEqual([
      "/srv/shop.yml:10:15: applications.roles[1].name: role 'shop' is declared twice (also roles[0])",
      "/srv/shop.yml:11:15: applications.roles[2].name: 'replicator' is the replication role; applications need a role of their own",
      "/srv/shop.yml:13:15: applications.databases[0].name: 'postgres' is one of PostgreSQL's own databases; applications need one of their own",
    ]);
  });

  it("sources: addresses become one-host CIDRs, IPv6 prefixes are checked bit by bit", () => {
    expect(checkSource("fd00::1")).toEqual({ value: "fd00::1/128" });
    expect(checkSource("fd00::/8")).toEqual({ value: "fd00::/8" });
    expect(checkSource("fd00::1/64")).toEqual({ problem: "'fd00::1/64' has bits set beyond its /64 prefix; write the network address (like fd00::/64)" });
    expect(checkSource("::ffff:10.0.0.0/104")).toEqual({ value: "::ffff:10.0.0.0/104" });
    expect(checkSource("db.example.com")).toEqual({ value: "db.example.com" });
    expect(checkSource("0.0.0.0/0")).toEqual({ value: "0.0.0.0/0" });
  });
});
