import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";

// pgrep sends PostgreSQL a verifier, never the password: the plaintext cannot end up in the server's log or
// pg_stat_activity. SCRAM-SHA-256 by default, in the server's own format (RFC 5802/7677); md5 only when the
// inventory asks for it.

const ITERATIONS = 4096;

function keys(password: string, salt: Buffer, iterations: number) {
  // SASLprep is the identity for ASCII; NFKC covers the normalisation part for other passwords.
  const salted = pbkdf2Sync(Buffer.from(password.normalize("NFKC"), "utf8"), salt, iterations, 32, "sha256");
  const clientKey = createHmac("sha256", salted).update("Client Key").digest();
  return {
    storedKey: createHash("sha256").update(clientKey).digest(),
    serverKey: createHmac("sha256", salted).update("Server Key").digest(),
  };
}

export function scramVerifier(password: string, salt: Buffer = randomBytes(16), iterations = ITERATIONS): string {
  const { storedKey, serverKey } = keys(password, salt, iterations);
  return `SCRAM-SHA-256$${iterations}:${salt.toString("base64")}$${storedKey.toString("base64")}:${serverKey.toString("base64")}`;
}

export type PasswordEncryption = "scram-sha-256" | "md5";

/** md5 verifiers are md5(password || user name), hex, after "md5". */
export function md5Verifier(password: string, user: string): string {
  return `md5${createHash("md5").update(password + user).digest("hex")}`;
}

export function passwordVerifier(kind: PasswordEncryption, password: string, user: string): string {
  return kind === "md5" ? md5Verifier(password, user) : scramVerifier(password);
}

/** True when a stored verifier (pg_authid.rolpassword) is of the wanted kind and was made from this password. */
export function storedPasswordMatches(kind: PasswordEncryption, stored: string | null | undefined, password: string, user: string): boolean {
  if (kind === "md5") return stored === md5Verifier(password, user);
  return verifierMatches(stored, password);
}

// Every standby holds the primary's verifier: a command that reads several hosts computes it once.
const checked = new Map<string, { password: string; matches: boolean }>();

/** True when a stored SCRAM verifier was made from this password. */
export function verifierMatches(stored: string | null | undefined, password: string): boolean {
  const known = stored ? checked.get(stored) : undefined;
  if (known?.password === password) return known.matches;
  const matches = computeMatch(stored, password);
  if (stored) checked.set(stored, { password, matches });
  return matches;
}

function computeMatch(stored: string | null | undefined, password: string): boolean {
  const m = /^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$/.exec(stored ?? "");
  if (!m) return false;
  const { storedKey, serverKey } = keys(password, Buffer.from(m[2]!, "base64"), Number(m[1]));
  const a = Buffer.concat([storedKey, serverKey]);
  const b = Buffer.concat([Buffer.from(m[3]!, "base64"), Buffer.from(m[4]!, "base64")]);
  return a.length === b.length && timingSafeEqual(a, b);
}
