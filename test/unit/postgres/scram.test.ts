import { describe, expect, it } from "vitest";
import { scramVerifier, verifierMatches } from "../../../src/postgres/scram.js";

describe("SCRAM verifier", () => {
  // Made by PostgreSQL 15 itself: SET password_encryption='scram-sha-256'; CREATE ROLE x PASSWORD '…'.
  const fromPostgres =
    "SCRAM-SHA-256$4096:WfzPNopyFdeBXrWol4hVGA==$FSnMnCcqr7V/wH5MsP/nhegQMtW0/EY02+DIg56Hejs=:fy8X55oZakm4WGyRWMnu8DxieM7uuyD4QXjhGySt8PA=";

  it("recognises a verifier PostgreSQL made, including a non-ASCII password", () => {
    expect(verifierMatches(fromPostgres, "correct horse ☃ battery")).toBe(true);
    expect(verifierMatches(fromPostgres, "correct horse ☃ batterY")).toBe(false);
  });

  it("makes the same verifier as PostgreSQL for the same salt", () => {
    const salt = Buffer.from("WfzPNopyFdeBXrWol4hVGA==", "base64");
    expect(scramVerifier("correct horse ☃ battery", salt, 4096)).toBe(fromPostgres);
  });

  it("salts every verifier freshly", () => {
    const a = scramVerifier("pw");
    expect(a).not.toBe(scramVerifier("pw"));
    expect(verifierMatches(a, "pw")).toBe(true);
  });

  it("does not accept md5 or missing verifiers", () => {
    expect(verifierMatches("md5abcdef", "pw")).toBe(false);
    expect(verifierMatches(null, "pw")).toBe(false);
  });
});
