import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { becomeArgv } from "../../../src/transport/become.js";
import { shellCommand } from "../../../src/transport/quote.js";

describe("shellCommand", () => {
  it("survives a real shell unchanged, whatever the bytes", () => {
    const args = ["plain", "", "with space", "it's", 'dq"', "$HOME", "`id`", "a\\b", "new\nline", "*", "--flag=x;y", "ü€"];
    const out = execFileSync("sh", ["-c", shellCommand(["printf", "%s\\0", ...args])]).toString();
    expect(out.split("\0").slice(0, -1)).toEqual(args);
  });

  it("leaves safe words unquoted so logs stay readable", () => {
    expect(shellCommand(["pg_ctlcluster", "15", "main", "start"])).toBe("pg_ctlcluster 15 main start");
  });
});

describe("becomeArgv", () => {
  it("uses runuser as root, sudo -n otherwise, nothing for the same user", () => {
    expect(becomeArgv("root", "postgres", ["id"])).toEqual(["runuser", "-u", "postgres", "--", "id"]);
    expect(becomeArgv("deploy", "root", ["id"])).toEqual(["sudo", "-n", "--", "id"]);
    expect(becomeArgv("deploy", "postgres", ["id"])).toEqual(["sudo", "-n", "-u", "postgres", "--", "id"]);
    expect(becomeArgv("postgres", "postgres", ["id"])).toEqual(["id"]);
  });
});
