import { readFileSync } from "node:fs";
import Handlebars from "handlebars";

// An isolated Handlebars: noEscape (HTML escaping would corrupt conninfo strings) and strict (a missing
// value is an error, not an empty string).
const hb = Handlebars.create();
hb.registerHelper("q", (v: unknown) => `'${String(v).replaceAll("\\", "\\\\").replaceAll("'", "''")}'`);

const templatesDir = new URL("../../templates/", import.meta.url);
const cache = new Map<string, HandlebarsTemplateDelegate>();

export function renderTemplate(name: string, data: object): string {
  let t = cache.get(name);
  if (!t) {
    t = hb.compile(readFileSync(new URL(`${name}.hbs`, templatesDir), "utf8"), { noEscape: true, strict: true });
    cache.set(name, t);
  }
  return t(data);
}
