// npm run schema: writes inventories/inventory.schema.json from the built zod schema (see
// src/inventory/json-schema.ts); a unit test fails when the file is not what this would write.
import { writeFileSync } from "node:fs";
import { inventoryJsonSchema } from "../dist/inventory/json-schema.js";

writeFileSync(new URL("../inventories/inventory.schema.json", import.meta.url), JSON.stringify(inventoryJsonSchema(), null, 2) + "\n");
