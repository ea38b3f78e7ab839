import { z } from "zod";

// "did you mean" for names and keys: the closest known word within a small edit distance.

function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++)
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length]![b.length]!;
}

/** " (did you mean 'x'?)" or "". */
export function suggest(word: string, known: readonly string[]): string {
  const w = word.toLowerCase();
  let best: string | undefined;
  let bestD = Math.max(2, Math.floor(w.length / 3)) + 1;
  for (const k of known) {
    const d = distance(w, k.toLowerCase());
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best ? ` (did you mean '${best}'?)` : "";
}

/** The keys an object in the schema allows at a path of the parsed data (numbers step into arrays). */
export function keysAt(schema: z.ZodTypeAny, path: readonly (string | number)[]): string[] {
  let s: z.ZodTypeAny | undefined = schema;
  const unwrap = (t: z.ZodTypeAny): z.ZodTypeAny => (t instanceof z.ZodDefault ? unwrap(t._def.innerType) : t instanceof z.ZodOptional ? unwrap(t.unwrap()) : t);
  for (const p of path) {
    if (!s) return [];
    s = unwrap(s);
    if (typeof p === "number" && s instanceof z.ZodArray) s = s.element;
    else if (typeof p === "string" && s instanceof z.ZodObject) s = (s.shape as Record<string, z.ZodTypeAny>)[p];
    else return [];
  }
  if (!s) return [];
  s = unwrap(s);
  return s instanceof z.ZodObject ? Object.keys(s.shape as object) : [];
}
