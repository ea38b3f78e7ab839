import { createHash } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { ClusterSpec } from "../model/cluster.js";
import { InputError } from "../errors.js";

// Certificates for replication over TLS (made in certs.ts). Without a CA of the user's, pgrep's own lives in
// the state directory (key 0600) and issues each host a server certificate naming its address.

export interface HostTls {
  cert: string;
  key: string;
}

export interface TlsMaterial {
  sslmode: "verify-full" | "verify-ca";
  ca: string;
  hosts: Map<string, HostTls>;
}

/** A file's content hash, as observe reports it for the files on a host (the key never leaves this machine). */
export function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

async function readText(path: string, what: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return undefined;
    throw new InputError(`cannot read ${what} ${path} (${code ?? "error"})`);
  }
}

async function required(path: string, what: string): Promise<string> {
  const t = await readText(path, what);
  if (t === undefined) throw new InputError(`cannot read ${what} ${path} (no such file)`);
  return t;
}

async function keep(path: string, text: string, mode: number): Promise<void> {
  await writeFile(path, text, { mode });
}

/**
 * The CA and every host's certificate and key, for an inventory with replication.tls; undefined without.
 * `create`: issue what is missing (setup and role changes); otherwise only what exists is read.
 */
export async function loadTls(spec: ClusterSpec, create: boolean): Promise<TlsMaterial | undefined> {
  if (!spec.tls) return undefined;
  const { issue, newCa, stillGood } = await import("./certs.js");
  const dir = join(spec.stateDir, "tls");
  let ca: { cert: string; key: string | undefined };
  if (spec.tls.caCert) {
    ca = { cert: await required(spec.tls.caCert, "the CA certificate"), key: spec.tls.caKey ? await required(spec.tls.caKey, "the CA key") : undefined };
  } else {
    const cert = await readText(join(dir, "ca.crt"), "pgrep's CA certificate");
    const key = await readText(join(dir, "ca.key"), "pgrep's CA key");
    if (cert && key) ca = { cert, key };
    else {
      if (!create) throw new InputError(`no TLS certificates yet: ${join(dir, "ca.crt")} does not exist`, "run pgrep setup with this inventory first");
      ca = newCa(spec.name);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      await keep(join(dir, "ca.key"), ca.key!, 0o600);
      await keep(join(dir, "ca.crt"), ca.cert, 0o644);
    }
  }
  const hosts = new Map<string, HostTls>();
  for (const h of spec.hosts) {
    if (h.tlsFiles) {
      hosts.set(h.name, { cert: await required(h.tlsFiles.cert, `${h.name}'s certificate`), key: await required(h.tlsFiles.key, `${h.name}'s key`) });
      continue;
    }
    const certPath = join(dir, `${h.name}.crt`);
    const keyPath = join(dir, `${h.name}.key`);
    const cert = await readText(certPath, `${h.name}'s certificate`);
    const key = await readText(keyPath, `${h.name}'s key`);
    if (cert && key && stillGood(h, { cert, key }, ca.cert)) {
      hosts.set(h.name, { cert, key });
      continue;
    }
    if (!ca.key) throw new InputError(`${h.name}: no certificate, and no CA key to issue one`, "give hosts[].tls: { cert, key }, or replication.tls.ca_key");
    if (!create) throw new InputError(`${h.name}: no current TLS certificate`, "run pgrep setup with this inventory first");
    const issued = issue(h, { cert: ca.cert, key: ca.key });
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await keep(keyPath, issued.key, 0o600);
    await keep(certPath, issued.cert, 0o644);
    hosts.set(h.name, issued);
  }
  return { sslmode: spec.tls.sslmode, ca: ca.cert, hosts };
}
