import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pgrep } from "../cli.js";
import { dryRun } from "../rig/dry-run.js";
import { replicationPassword, withoutSecrets } from "../rig/watch.js";
import { Rig } from "../rig/rig.js";

// A cascading standby on real hosts: pg3 is copied from and streams from pg2, which streams from pg1.
// The tests run in order: the first builds the cascade the others read and change.

let rig: Rig;
let inv: string;

const senders = (h: string) => rig.psql(h, "SELECT coalesce(string_agg(application_name || ':' || state, ',' ORDER BY application_name), '') FROM pg_stat_replication");
const slots = (h: string) => rig.psql(h, "SELECT coalesce(string_agg(slot_name || ':' || active, ',' ORDER BY slot_name), '') FROM pg_replication_slots");

describe("cascading standbys", () => {
  beforeAll(async () => {
    rig = await Rig.start(["pg1", "pg2", "pg3"]);
    inv = rig.inventory({ primary: "pg1", upstreams: { pg3: "pg2" } });
  });
  afterAll(async () => {
    await rig?.stop();
  });

  it("setup copies pg3 from pg2 once pg2 streams, and pg3 streams from pg2 through a slot there", async () => {
    const dry = await dryRun(rig, ["setup", "-i", inv]);
    expect(dry.exitCode, dry.all).toBe(7); // changes pending
    expect(dry.stdout).toMatch(/cascading standbys \(2 hops from the primary\)[\s\S]*\[pg3\] clone from pg2 with pg_basebackup/);
    const r = await pgrep(["setup", "-i", inv]);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stdout).toMatch(/pg3\s+standby\s+streaming\s+pg2/);
    expect(r.stderr).toMatch(/\[pg3\] pg_basebackup from pg2: /);
    expect(await senders("pg1")).toBe("pg2:streaming");
    expect(await senders("pg2")).toBe("pg3:streaming");
    expect(await slots("pg1")).toBe("pgrep_pg2:true");
    expect(await slots("pg2")).toBe("pgrep_pg3:true");
    expect(await rig.psql("pg3", "SELECT sender_host FROM pg_stat_wal_receiver")).toBe("pg2");
    await rig.psql("pg1", "CREATE TABLE c (id int PRIMARY KEY); INSERT INTO c SELECT generate_series(1, 500)");
    await rig.waitReplayed("pg1", "pg3");
    expect(await rig.psql("pg3", "SELECT count(*) FROM c")).toBe("500");
    const again = await pgrep(["setup", "-i", inv]);
    expect(again.stderr).toMatch(/Nothing to change/);
  });

  it("status reports each standby against its own upstream", async () => {
    const r = await pgrep(["status", "-i", inv, "--json"]);
    expect(r.exitCode, r.all).toBe(0);
    const hosts = JSON.parse(r.stdout).hosts as { name: string; upstream: string; state: string; slot: string }[];
    expect(hosts.map((h) => [h.name, h.upstream, h.state, h.slot])).toEqual([
      ["pg1", null, "running", null],
      ["pg2", "pg1", "streaming", "pgrep_pg2"],
      ["pg3", "pg2", "streaming", "pgrep_pg3"],
    ]);
  });

  it("promoting the cascading standby: pg2 and the fenced old primary follow it, the inventory records it", async () => {
    const p = await withoutSecrets(rig, ["pg1", "pg2", "pg3"], [replicationPassword(inv)], () => pgrep(["promote", "pg3", "-i", inv, "--fence"]));
    expect(p.exitCode, p.all).toBe(0);
    expect(p.stderr).toMatch(/Recorded in .*: pg3 is the primary; pg1 is a standby of the primary; pg2 is a standby of the primary/);
    expect(readFileSync(inv, "utf8")).not.toMatch(/upstream:/);
    // Fenced cleanly, pg1 holds nothing pg3 lacks: it follows in the same command, through its own slot.
    expect(await senders("pg3")).toBe("pg1:streaming,pg2:streaming");
    expect(await slots("pg3")).toBe("pgrep_pg1:true,pgrep_pg2:true");
    await rig.psql("pg3", "INSERT INTO c VALUES (501)");
    await rig.waitReplayed("pg3", "pg2");
    await rig.waitReplayed("pg3", "pg1");
    expect(await rig.psql("pg2", "SELECT count(*) FROM c")).toBe("501");
    expect(await rig.psql("pg1", "SELECT count(*) FROM c")).toBe("501");
    // pg2 no longer feeds anyone, and pg1 feeds nobody either: no slot is left on them.
    expect(await slots("pg2")).toBe("");
    expect(await slots("pg1")).toBe("");
    const j = await withoutSecrets(rig, ["pg1", "pg2", "pg3"], [replicationPassword(inv)], () => pgrep(["rejoin", "pg1", "-i", inv]));
    expect(j.exitCode, j.all).toBe(0);
    expect(j.stderr).toMatch(/\[pg1\] already streams from pg3; nothing to do/);
  });

  it("unfollow of a standby others stream from: they stream from its upstream first, then it leaves; a synchronous one is refused", async () => {
    inv = rig.inventory({ primary: "pg3", upstreams: { pg1: "pg2" } });
    expect((await pgrep(["setup", "-i", inv])).exitCode).toBe(0);
    expect(await senders("pg2")).toBe("pg1:streaming");
    const sync = rig.inventory({ primary: "pg3", upstreams: { pg1: "pg2" }, file: "sync.yml", extraTop: "replication:\n  synchronous: [pg2]" });
    const refused = await pgrep(["unfollow", "pg2", "-i", sync]);
    expect(refused.exitCode, refused.all).toBe(4);
    expect(refused.stderr).toMatch(/pg2 is named in replication\.synchronous/);
    const dry = await dryRun(rig, ["unfollow", "pg2", "-i", inv]);
    expect(dry.exitCode, dry.all).toBe(0);
    expect(dry.stdout).toMatch(/first: pg1 streams from pg3 instead/);
    const r = await withoutSecrets(rig, ["pg1", "pg2", "pg3"], [replicationPassword(inv)], () => pgrep(["unfollow", "pg2", "-i", inv]));
    expect(r.exitCode, r.all).toBe(0);
    // pg1 moved while pg2 was still a standby: it stays on the cluster's timeline, streaming from pg3.
    expect(await senders("pg3")).toBe("pg1:streaming");
    expect(await slots("pg3")).toBe("pgrep_pg1:true");
    expect(await rig.psql("pg2", "SELECT pg_is_in_recovery()")).toBe("f");
    await rig.psql("pg3", "INSERT INTO c VALUES (502)");
    await rig.waitReplayed("pg3", "pg1");
    expect(await rig.psql("pg1", "SELECT count(*) FROM c")).toBe("502");
    expect(readFileSync(inv, "utf8")).not.toMatch(/pg2/);
    expect((await dryRun(rig, ["setup", "-i", inv])).exitCode).toBe(0);
  });
});
