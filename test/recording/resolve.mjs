// Module resolve hook (runs off the main thread): pgrep's transports and execa resolve to the recorder.
const recorder = new URL("./transport.mjs", import.meta.url).href;

export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  if (/\/dist\/transport\/(ssh|local)\.js$/.test(r.url) || specifier === "execa") return { url: recorder, shortCircuit: true };
  return r;
}
