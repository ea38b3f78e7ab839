import { createHash, createHmac } from "node:crypto";
import { appendFile, mkdir, readFile } from "node:fs/promises";
import { dirname } from "node:path";

// OpenSSH known_hosts: plain and hashed (|1|salt|hmac) host patterns, "[host]:port" for non-22 ports.

export interface HostKey {
  type: string;
  blob: Buffer;
}

export type KeyCheck = { status: "known" } | { status: "unknown" } | { status: "changed"; expected: string[] } | { status: "revoked" };

export function hostPattern(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

export function keyType(blob: Buffer): string {
  const len = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + len).toString("latin1");
}

export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

function patternMatches(field: string, name: string): boolean {
  if (field.startsWith("|1|")) {
    const [, , salt, mac] = field.split("|");
    if (!salt || !mac) return false;
    const h = createHmac("sha1", Buffer.from(salt, "base64")).update(name).digest("base64");
    return h === mac;
  }
  let hit = false;
  for (const p of field.split(",")) {
    const negated = p.startsWith("!");
    const pat = negated ? p.slice(1) : p;
    const re = new RegExp(`^${pat.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`);
    if (re.test(name)) {
      if (negated) return false;
      hit = true;
    }
  }
  return hit;
}

export class KnownHosts {
  private constructor(
    readonly path: string,
    private text: string,
  ) {}

  static async load(path: string): Promise<KnownHosts> {
    let text = "";
    try {
      text = await readFile(path, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
    return new KnownHosts(path, text);
  }

  check(host: string, port: number, key: HostKey): KeyCheck {
    const name = hostPattern(host, port);
    const sameType: string[] = [];
    for (const raw of this.text.split("\n")) {
      const line = raw.trim();
      if (!line || line.startsWith("#")) continue;
      const parts = line.split(/\s+/);
      let marker: string | undefined;
      if (parts[0]?.startsWith("@")) marker = parts.shift();
      const [patterns, type, b64] = parts;
      if (!patterns || !type || !b64 || !patternMatches(patterns, name)) continue;
      const blob = Buffer.from(b64, "base64");
      if (marker === "@revoked") {
        if (blob.equals(key.blob)) return { status: "revoked" };
        continue;
      }
      if (marker) continue; // @cert-authority: host certificates are not used here
      if (type === key.type) {
        if (blob.equals(key.blob)) return { status: "known" };
        sameType.push(fingerprint(blob));
      }
    }
    return sameType.length ? { status: "changed", expected: sameType } : { status: "unknown" };
  }

  async add(host: string, port: number, key: HostKey): Promise<void> {
    const line = `${hostPattern(host, port)} ${key.type} ${key.blob.toString("base64")}\n`;
    const sep = this.text && !this.text.endsWith("\n") ? "\n" : "";
    await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
    await appendFile(this.path, sep + line, { mode: 0o600 });
    this.text += sep + line;
  }
}
