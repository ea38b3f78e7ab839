import type { ClusterSpec, HostSpec } from "../model/cluster.js";
import type { ClusterSnapshot, ReachableHost } from "../cluster/state.js";
import { InputError, PgrepError, UnreachableError } from "../errors.js";
import { shownPath } from "../inventory/index.js";
import { suggest } from "../inventory/suggest.js";

// Hosts named on the command line, and what observe saw of them.

export function hostNamed(spec: ClusterSpec, name: string): HostSpec {
  const h = spec.hosts.find((x) => x.name === name);
  if (!h) throw new InputError(`no host named '${name}' in ${shownPath(spec.inventoryFile)}${suggest(name, spec.hosts.map((x) => x.name))}`, `hosts: ${spec.hosts.map((x) => x.name).join(", ")}`);
  return h;
}

export function reachable(snap: ClusterSnapshot, name: string): ReachableHost {
  const s = snap.hosts.get(name);
  if (!s) throw new Error(`${name} was not observed`);
  if (!s.reachable) throw s.error instanceof PgrepError ? s.error : new UnreachableError(name, s.error.message);
  return s;
}
