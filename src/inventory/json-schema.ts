import { zodToJsonSchema } from "zod-to-json-schema";
import { inventorySchema } from "./schema.js";

// The inventory's JSON Schema, made from the zod schema that validates it, so that editors complete and
// check what pgrep itself accepts. Generated at development time (npm run schema) into
// inventories/inventory.schema.json, which the package ships; pgrep never loads this module at run time.

export function inventoryJsonSchema(): object {
  const schema = zodToJsonSchema(inventorySchema, { target: "jsonSchema7", $refStrategy: "none", removeAdditionalStrategy: "strict", applyRegexFlags: true }) as Record<string, unknown>;
  return {
    $schema: "http://json-schema.org/draft-07/schema#",
    title: "pgrep inventory",
    description: "One PostgreSQL streaming-replication cluster: hosts, roles, PostgreSQL and SSH settings (pgrep setup -i FILE).",
    ...Object.fromEntries(Object.entries(schema).filter(([k]) => k !== "$schema")),
  };
}
