import { describe, expect, it } from "vitest";
import { carriedConfig, commonParent, initdbOptions, pgUpgradeArgv, rsyncMoved, upgradeRsyncArgv } from "../../../src/postgres/upgrade.js";
import { capabilities, upgradeNeedsUnlimitedSlotKeep } from "../../../src/postgres/versions.js";

// A major upgrade's pure parts: what the new cluster is made with, what of the old configuration it
// reads, and the commands of the documented procedure.

const facts = { encoding: "UTF8", collate: "en_US.UTF-8", ctype: "en_US.UTF-8", provider: undefined, locale: undefined, checksums: false, walSegmentBytes: 16 * 1024 * 1024 };

describe("initdbOptions", () => {
  it("matches the old cluster: encoding and locale always, checksums off said out loud where initdb turns them on", () => {
    expect(initdbOptions(facts, capabilities(15))).toEqual(["--encoding=UTF8", "--lc-collate=en_US.UTF-8", "--lc-ctype=en_US.UTF-8"]);
    expect(initdbOptions(facts, capabilities(18))).toContain("--no-data-checksums");
    expect(initdbOptions({ ...facts, checksums: true }, capabilities(18))).toContain("--data-checksums");
    expect(initdbOptions({ ...facts, walSegmentBytes: 64 * 1024 * 1024 }, capabilities(16))).toContain("--wal-segsize=64");
    expect(initdbOptions({ ...facts, provider: "i", locale: "und-x-icu" }, capabilities(16))).toEqual(expect.arrayContaining(["--locale-provider=icu", "--icu-locale=und-x-icu"]));
  });
});

describe("carriedConfig", () => {
  const debian13 = [
    "data_directory = '/var/lib/postgresql/13/main'\t\t# use data in another directory",
    "hba_file = '/etc/postgresql/13/main/pg_hba.conf'",
    "external_pid_file = '/var/run/postgresql/13-main.pid'",
    "cluster_name = '13/main'",
    "stats_temp_directory = '/var/run/postgresql/13-main.pg_stat_tmp'",
    "shared_buffers = 128MB\t# min 128kB",
    "#data_directory = '/var/lib/postgresql/13/main'",
    "archive_command = 'cp %p /backup/13/main/%f'",
    "include_dir = 'conf.d'",
  ].join("\n");

  it("points the cluster's own paths at the new major, and comments out what the new major lacks", () => {
    const { text, dropped } = carriedConfig(debian13, 13, 15, "main");
    expect(text.split("\n")).toEqual([
      "data_directory = '/var/lib/postgresql/15/main'\t\t# use data in another directory",
      "hba_file = '/etc/postgresql/15/main/pg_hba.conf'",
      "external_pid_file = '/var/run/postgresql/15-main.pid'",
      "cluster_name = '15/main'",
      "# stats_temp_directory = '/var/run/postgresql/13-main.pg_stat_tmp'\t# pgrep upgrade: stats_temp_directory does not exist in PostgreSQL 15 (10–14); the server would refuse to start",
      "shared_buffers = 128MB\t# min 128kB",
      "#data_directory = '/var/lib/postgresql/13/main'",
      // Not the cluster's own path: a DBA's archive location is left as it is.
      "archive_command = 'cp %p /backup/13/main/%f'",
      "include_dir = 'conf.d'",
    ]);
    expect(dropped).toEqual(["stats_temp_directory"]);
  });

  it("leaves another cluster's name alone (13/mainline is not 13/main)", () => {
    expect(carriedConfig("data_directory = '/srv/13/mainline'", 13, 15, "main").text).toBe("data_directory = '/srv/13/mainline'");
  });
});

describe("the standbys' rsync", () => {
  it("roots the transfer at the directory holding both data directories, so both keep their paths", () => {
    expect(commonParent("/var/lib/postgresql/13/main", "/var/lib/postgresql/15/main")).toBe("/var/lib/postgresql");
    expect(commonParent("/data/pg13", "/data/pg15")).toBe("/data");
  });

  it("pulls both directories in one transfer, by size, with hard links, keeping the standby's own files of the old one", () => {
    const argv = upgradeRsyncArgv("/var/lib/postgresql/13/main", "/var/lib/postgresql/15/main", "postgres@pg1:", ["-e", "ssh"]);
    expect(argv).toEqual(expect.arrayContaining(["--archive", "--delete", "--hard-links", "--size-only", "--no-inc-recursive", "--relative"]));
    expect(argv).toContain("--exclude=/13/main/global/pg_control");
    expect(argv).toContain("--exclude=/13/main/standby.signal");
    expect(argv).toContain("--exclude=/13/main/pg_wal/");
    expect(argv.some((a) => a.startsWith("--exclude=/15/main/pg_wal"))).toBe(false); // the new cluster's WAL holds its checkpoint
    expect(argv.slice(-3)).toEqual(["postgres@pg1:/var/lib/postgresql/./13/main", "postgres@pg1:/var/lib/postgresql/./15/main", "/var/lib/postgresql/"]);
  });

  it("reads what rsync --stats says it sent", () => {
    expect(rsyncMoved("Number of files: 1,234\nTotal file size: 83,886,080 bytes\nTotal transferred file size: 40,474,624 bytes\n")).toEqual({ sent: 40474624, total: 83886080 });
    expect(rsyncMoved("nothing")).toBeUndefined();
  });
});

describe("pg_upgrade", () => {
  it("a live check connects to the running server's port; the real run uses pg_upgrade's own", () => {
    const run = { oldBin: "/o/bin", newBin: "/n/bin", oldData: "/o/data", newData: "/n/data", oldConf: "/etc/o.conf", newConf: "/etc/n.conf", oldPort: 5432 };
    expect(pgUpgradeArgv({ ...run, check: true })).toEqual(["/n/bin/pg_upgrade", "--link", "--check", "-b", "/o/bin", "-B", "/n/bin", "-d", "/o/data", "-D", "/n/data", "-p", "5432", "-o", "-c config_file=/etc/o.conf", "-O", "-c config_file=/etc/n.conf"]);
    expect(pgUpgradeArgv({ ...run, check: false })).not.toContain("-p");
  });

  it("17.0–17.5 need max_slot_wal_keep_size -1", () => {
    expect(["17.0", "17.5"].map(upgradeNeedsUnlimitedSlotKeep)).toEqual([true, true]);
    expect(["17.6", "16.4", "18.1"].map(upgradeNeedsUnlimitedSlotKeep)).toEqual([false, false, false]);
  });
});
