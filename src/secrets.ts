import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import type { ClusterSpec, PasswordSource } from "./model/cluster.js";
import { InputError } from "./errors.js";

/** The replication password, from the inventory's source; generated once and kept 0600 when none is given. */
export async function loadReplicationPassword(spec: ClusterSpec, create: boolean): Promise<string | undefined> {
  return loadSecret(spec.password, "replication.password", create);
}

/** Each application role's password (setup creates the generated ones); absent ones are left out. */
export async function loadAppPasswords(spec: ClusterSpec, create: boolean): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for (const [i, r] of spec.apps.roles.entries()) {
    // A dry run goes on without a variable that is not set: the plan then says the password will be set.
    if (!create && r.password.kind === "env" && !process.env[r.password.name]) continue;
    const v = await loadSecret(r.password, `applications.roles[${i}].password`, create);
    if (v !== undefined) found.set(r.name, v);
  }
  return found;
}

/** A password from the environment or a file; a generated one is made once (0600) when `create`. */
export async function loadSecret(src: PasswordSource, key: string, create: boolean): Promise<string | undefined> {
  if (src.kind === "env") {
    const v = process.env[src.name];
    if (!v) throw new InputError(`${key}: environment variable ${src.name} is not set or empty`, `export ${src.name}=… before running pgrep`);
    return v;
  }
  const read = async (path: string) => {
    try {
      return (await readFile(path, "utf8")).replace(/\r?\n$/, "");
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT" && src.kind === "generated") return undefined;
      throw new InputError(`${key}: cannot read ${path} (${code ?? "error"})`);
    }
  };
  const value = await read(src.path);
  if (value !== undefined) {
    if (!value) throw new InputError(`${key}: ${src.path} is empty`);
    if (/[\n\r]/.test(value)) throw new InputError(`${key}: ${src.path} holds more than one line`);
    return value;
  }
  if (!create) return undefined;
  const generated = randomBytes(24).toString("base64url");
  await mkdir(dirname(src.path), { recursive: true, mode: 0o700 });
  try {
    await writeFile(src.path, `${generated}\n`, { mode: 0o600, flag: "wx" });
  } catch (e) {
    // Another pgrep made it a moment ago (two first setups at once): theirs is the cluster's password.
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return (await read(src.path)) ?? generated;
    throw e;
  }
  return generated;
}
