import { describe, expect, it } from "vitest";
import { capabilities, settingProblem, SUPPORTED_MAJORS } from "../../../src/postgres/versions.js";

describe("capabilities by major", () => {
  it("follow the facts checked on real servers", () => {
    const row = (m: number) => {
      const c = capabilities(m);
      return [m, c.standbyMechanism, c.walKeep.name, c.triggerFileSetting, c.hasPgPromote, c.backupApi.start, c.primaryConninfoApply, c.defaultPasswordEncryption];
    };
    expect(SUPPORTED_MAJORS.map(row)).toEqual([
      [10, "recovery.conf", "wal_keep_segments", "trigger_file", false, "pg_start_backup", "restart", "md5"],
      [11, "recovery.conf", "wal_keep_segments", "trigger_file", false, "pg_start_backup", "restart", "md5"],
      [12, "standby.signal", "wal_keep_segments", "promote_trigger_file", true, "pg_start_backup", "restart", "md5"],
      [13, "standby.signal", "wal_keep_size", "promote_trigger_file", true, "pg_start_backup", "reload", "md5"],
      [14, "standby.signal", "wal_keep_size", "promote_trigger_file", true, "pg_start_backup", "reload", "scram-sha-256"],
      [15, "standby.signal", "wal_keep_size", "promote_trigger_file", true, "pg_backup_start", "reload", "scram-sha-256"],
      [16, "standby.signal", "wal_keep_size", null, true, "pg_backup_start", "reload", "scram-sha-256"],
      [17, "standby.signal", "wal_keep_size", null, true, "pg_backup_start", "reload", "scram-sha-256"],
      [18, "standby.signal", "wal_keep_size", null, true, "pg_backup_start", "reload", "scram-sha-256"],
    ]);
  });

  it("refuse majors outside 10–18", () => {
    expect(() => capabilities(9)).toThrow();
    expect(() => capabilities(19)).toThrow();
  });

  it("know which settings each major lacks", () => {
    expect(settingProblem(12, "wal_keep_size")).toMatch(/does not exist in PostgreSQL 12/);
    expect(settingProblem(13, "wal_keep_size")).toBeNull();
    expect(settingProblem(11, "primary_conninfo")).toMatch(/recovery\.conf/);
    expect(settingProblem(12, "primary_slot_name")).toBeNull();
    expect(settingProblem(15, "standby_mode")).toMatch(/not a postgresql\.conf setting/);
    expect(settingProblem(18, "shared_buffers")).toBeNull();
  });
});
