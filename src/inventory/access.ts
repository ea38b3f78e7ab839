import { ipFamily } from "../model/address.js";
import type { AccessRule } from "../model/cluster.js";
import type { Capabilities } from "../postgres/versions.js";
import type { Inventory } from "./schema.js";

// applications.access: checked here, word by word, so that pg_hba.conf never receives a line the server
// would reject at reload (PostgreSQL then keeps the old file and says so only in its log).

type RuleInput = Inventory["applications"]["access"][number];
export interface RuleProblem {
  key: string;
  message: string;
}

const KEYWORD_SOURCES = new Set(["all", "samehost", "samenet"]);
const HOSTNAME = /^\.?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;
const NAME = /^[a-z_][a-z0-9_$-]{0,62}$/i;

/** A source as pg_hba takes it, or why it is not one. A bare address becomes a one-host CIDR. */
export function checkSource(source: string): { value: string } | { problem: string } {
  if (KEYWORD_SOURCES.has(source)) return { value: source };
  const slash = source.indexOf("/");
  const addr = slash === -1 ? source : source.slice(0, slash);
  const family = ipFamily(addr);
  const looksNumeric = /^[\d.]+$/.test(addr) || addr.includes(":");
  if (!family) {
    if (slash !== -1 || looksNumeric) return { problem: `'${source}' is not a CIDR address (like 10.0.0.0/8 or fd00::/8)` };
    if (!HOSTNAME.test(source)) return { problem: `'${source}' is neither an address, a host name, samenet, samehost nor all` };
    return { value: source };
  }
  const bits = family === 4 ? 32 : 128;
  if (slash === -1) return { value: `${addr}/${bits}` };
  const len = source.slice(slash + 1);
  if (!/^\d{1,3}$/.test(len) || Number(len) > bits) return { problem: `'${source}': the prefix length must be 0–${bits}` };
  if (hostBitsSet(addr, family, Number(len)))
    return { problem: `'${source}' has bits set beyond its /${len} prefix; write the network address (like ${networkOf(addr, family, Number(len))}/${len})` };
  return { value: `${addr}/${len}` };
}

/** The URL parser's canonical IPv6 text: lower case, an embedded IPv4 part in hex, "::" for the longest zeros. */
const canonicalV6 = (addr: string) => new URL(`http://[${addr}]`).hostname.slice(1, -1);

function addressBytes(addr: string, family: number): number[] {
  if (family === 4) return addr.split(".").map(Number);
  const [head, tail] = canonicalV6(addr).split("::");
  const words = (part: string | undefined) => (part ? part.split(":").map((w) => parseInt(w, 16)) : []);
  const h = words(head);
  const t = words(tail);
  const all = tail === undefined ? h : [...h, ...Array<number>(8 - h.length - t.length).fill(0), ...t];
  return all.flatMap((n) => [n >> 8, n & 255]);
}

/** The bits beyond the prefix cleared. */
function masked(bytes: number[], len: number): number[] {
  return bytes.map((b, i) => b & (0xff << (8 - Math.max(0, Math.min(8, len - i * 8)))) & 0xff);
}

function hostBitsSet(addr: string, family: number, len: number): boolean {
  const bytes = addressBytes(addr, family);
  return masked(bytes, len).some((b, i) => b !== bytes[i]);
}

function networkOf(addr: string, family: number, len: number): string {
  const bytes = masked(addressBytes(addr, family), len);
  if (family === 4) return bytes.join(".");
  return canonicalV6(Array.from({ length: 8 }, (_, i) => ((bytes[2 * i]! << 8) | bytes[2 * i + 1]!).toString(16)).join(":"));
}

const everywhere = (source: string) => source === "all" || source === "0.0.0.0/0" || source === "::/0";

/** One inventory rule as a pg_hba line, with what is wrong with it (keys relative to the rule). */
export function checkAccessRule(r: RuleInput, index: number, tls: boolean, caps: Capabilities | undefined): { rule?: AccessRule; problems: RuleProblem[] } {
  const problems: RuleProblem[] = [];
  const list = (v: string | string[]) => (Array.isArray(v) ? v : [v]);
  for (const [key, words] of [["database", list(r.database)], ["user", list(r.user)]] as const) {
    for (const w of words) {
      const keyword = key === "database" ? ["all", "sameuser", "samerole"].includes(w) : w === "all";
      const group = key === "user" && w.startsWith("+") && NAME.test(w.slice(1));
      if (key === "database" && w === "replication") problems.push({ key, message: "replication connections are pgrep's own (replication.user); name the application's database" });
      else if (!keyword && !group && !NAME.test(w)) problems.push({ key, message: `'${w}' is not a ${key === "user" ? "role name, +group or all" : "database name, all, sameuser or samerole"}` });
    }
  }
  const src = checkSource(r.source);
  if ("problem" in src) problems.push({ key: "source", message: src.problem });
  const needsTls = r.method === "cert" ? "method cert" : r.client_cert ? "client_cert" : undefined;
  if (needsTls && !tls) problems.push({ key: r.method === "cert" ? "method" : "client_cert", message: `${needsTls} needs TLS: set replication.tls (the servers then have certificates and rules become hostssl)` });
  if (r.client_cert === "verify-full" && r.method !== "cert" && caps && !caps.clientCertOption["verify-full"])
    problems.push({ key: "client_cert", message: `PostgreSQL ${caps.major} can only verify a client certificate's CA (client_cert: verify-ca); verify-full needs 12+` });
  if ("value" in src && everywhere(src.value) && r.method === "trust" && r.allow_open !== true)
    problems.push({ key: "method", message: `trust from ${src.value} lets anyone in without a password; if that is really meant, add allow_open: true to this rule` });
  if (problems.length || !("value" in src)) return { problems };
  return {
    rule: { database: list(r.database).join(","), user: list(r.user).join(","), source: src.value, method: r.method, clientCert: r.method === "cert" ? undefined : r.client_cert, origin: `applications.access[${index}]` },
    problems,
  };
}
