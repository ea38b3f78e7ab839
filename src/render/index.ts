import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type HandlebarsNamespace from "handlebars";
import { packagePath } from "../paths.js";

// An isolated Handlebars: noEscape (HTML escaping would corrupt conninfo strings) and strict (a missing
// value is an error, not an empty string). Loaded at the first render, not at start: a promotion reaches
// the new primary's first write before it renders anything.

const cache = new Map<string, HandlebarsTemplateDelegate>();
let hb: typeof HandlebarsNamespace | undefined;

function engine(): typeof HandlebarsNamespace {
  if (!hb) {
    const Handlebars = (createRequire(import.meta.url)("handlebars") as typeof HandlebarsNamespace).create();
    Handlebars.registerHelper("q", (v: unknown) => `'${String(v).replaceAll("\\", "\\\\").replaceAll("'", "''")}'`);
    hb = Handlebars;
  }
  return hb;
}

function template(name: string): HandlebarsTemplateDelegate {
  let t = cache.get(name);
  if (!t) {
    t = engine().compile(readFileSync(packagePath("templates", `${name}.hbs`), "utf8"), { noEscape: true, strict: true });
    cache.set(name, t);
  }
  return t;
}

export function renderTemplate(name: string, data: object): string {
  return template(name)(data);
}

/**
 * Loads Handlebars and compiles these templates now, so that a render later costs nothing: a role change
 * calls it while the server promotes, when pgrep only waits (about 60 ms of CPU off the way to the end).
 */
export function warmTemplates(names: readonly string[]): void {
  for (const name of names) {
    try {
      // Handlebars compiles at the first call; with no data the strict template then throws, compiled.
      template(name)({});
    } catch {
      // expected: see above
    }
  }
}
