import { readdirSync, readFileSync } from "node:fs";
import { Ajv } from "ajv";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { inventoryJsonSchema } from "../../../src/inventory/json-schema.js";

// The JSON Schema editors use (shipped as inventories/inventory.schema.json) is made from the zod schema
// pgrep validates with: it must be current, accept the example inventories, and reject what pgrep rejects
// for its shape.

const INVENTORIES = new URL("../../../inventories/", import.meta.url);
const BAD = new URL("../../fixtures/bad-input/", import.meta.url);
const shipped = JSON.parse(readFileSync(new URL("inventory.schema.json", INVENTORIES), "utf8"));
const validate = new Ajv({ allErrors: true, strict: false }).compile(shipped);

describe("the inventory's JSON Schema", () => {
  it("is what npm run schema makes from the zod schema today", () => {
    expect(shipped).toEqual(inventoryJsonSchema());
  });

  it.each(readdirSync(INVENTORIES).filter((f) => f.endsWith(".yml")))("accepts %s, which names it on its first line", (file) => {
    const text = readFileSync(new URL(file, INVENTORIES), "utf8");
    expect(text.split("\n")[0]).toBe("# yaml-language-server: $schema=./inventory.schema.json");
    expect(validate(parse(text)), JSON.stringify(validate.errors)).toBe(true);
  });

  it.each(["unknown-top-key.yml", "unknown-host-key.yml", "bad-role.yml", "missing-address.yml", "bad-host-name.yml", "port-out-of-range.yml", "clone-method.yml", "wrong-type-major.yml"])(
    "rejects %s, as pgrep does",
    (file) => {
      expect(validate(parse(readFileSync(new URL(file, BAD), "utf8")))).toBe(false);
    },
  );
});
