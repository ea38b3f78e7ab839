// A plan is data: what would be done, where, and why. Executing it is a separate module, so printing a
// plan cannot change anything.

import type { CloneCompress, HostSpec } from "../model/cluster.js";
import { describeCompression } from "./compress.js";
import type { ReachableHost } from "../cluster/state.js";

export type FileEdit =
  | { type: "replace"; content: string }
  | { type: "block"; begin: string; end: string; block: string }
  | { type: "line"; line: string }
  /** One setting's line set to value (a PostgreSQL string), or taken out (null); the rest kept. */
  | { type: "setting"; name: string; value: string | null };

export interface FileTarget {
  path: string;
  owner: string; // "" = leave as the writing user
  mode: number;
}

export function fileTarget(h: HostSpec, s: ReachableHost, path: string, mode: number): FileTarget {
  return { path, mode, owner: s.layout.admin === "root" ? `${h.pg.osUser}:` : "" };
}

/** pgrep's settings file on the host: private where PGDATA holds it (included by one line), else readable. */
export function settingsTarget(h: HostSpec, s: ReachableHost): FileTarget {
  return fileTarget(h, s, s.layout.settingsFile, s.layout.includeLine ? 0o600 : 0o644);
}

export type Step =
  | { kind: "create-cluster"; host: string; why: string }
  | { kind: "edit-file"; host: string; file: FileTarget; edit: FileEdit; why: string }
  | { kind: "remove-file"; host: string; path: string; why: string }
  | { kind: "write-passfile"; host: string; file: FileTarget; why: string }
  /** ca.crt, server.crt and server.key (0600) into dir, owned by owner ("" = the writing user); the content comes from the run's TLS material. */
  | { kind: "write-tls"; host: string; dir: string; owner: string; why: string }
  | { kind: "control"; host: string; action: "start" | "stop" | "reload" | "restart"; why: string }
  | { kind: "restart-if-pending"; host: string; why: string }
  /** ALTER SYSTEM RESET of these settings (or their lines out of postgresql.auto.conf while the server is stopped). */
  | { kind: "reset-auto-conf"; host: string; settings: string[]; why: string }
  | { kind: "ensure-role"; host: string; why: string }
  /** Application roles: created when missing, given LOGIN and their password's verifier. */
  | { kind: "app-roles"; host: string; roles: string[]; why: string }
  /** Application databases to create, and those whose CONNECT privilege is limited to the named roles. */
  | { kind: "app-databases"; host: string; create: string[]; connect: string[]; why: string }
  | { kind: "slots"; host: string; create: string[]; drop: string[]; why: string }
  /** A slot that is not pgrep's, on host, dropped once nothing streams through it (a hand-made standby's). */
  | { kind: "drop-slot"; host: string; slot: string; why: string }
  | {
      kind: "clone";
      host: string;
      from: string;
      method: "basebackup" | "rsync";
      /** auto: measured when the copy starts; `compressNote` says why auto was settled in the plan. */
      compress: CloneCompress;
      compressNote?: string;
      expectSysid: string | undefined;
      why: string;
    }
  | { kind: "wait-streaming"; host: string; upstream: string; why: string }
  /** Waits until the standby has replayed what the primary has written when the step starts. */
  | { kind: "catch-up"; host: string; primary: string; why: string }
  /** A planned switchover from `from` to `host` (run by the command, which owns the inventory). */
  | { kind: "switchover"; host: string; from: string; why: string };

/** Steps for one host, run in order. */
export interface Lane {
  host: string;
  steps: Step[];
}

/** Lanes of a phase run in parallel; phases run one after another. */
export interface Phase {
  title: string;
  lanes: Lane[];
}

export interface Plan {
  command: string;
  cluster: string;
  phases: Phase[];
  /** What the plan leaves out and why (hosts left as they are), printed with it. */
  notes?: string[];
  /** What differs from the inventory that setup leaves as it is (for status and setup --dry-run's exit 7). */
  differs?: { host: string; what: string }[];
}

/** The plan up to a switchover (its last phase, when there is one), and that switchover. */
export function withoutSwitchover(plan: Plan): { plan: Plan; switchover: Extract<Step, { kind: "switchover" }> | undefined } {
  const last = plan.phases.at(-1)?.lanes[0]?.steps[0];
  if (last?.kind !== "switchover") return { plan, switchover: undefined };
  return { plan: { ...plan, phases: plan.phases.slice(0, -1) }, switchover: last };
}

export function stepCount(plan: Plan): number {
  return plan.phases.reduce((n, p) => n + p.lanes.reduce((m, l) => m + l.steps.length, 0), 0);
}

export function describeStep(s: Step): string {
  switch (s.kind) {
    case "create-cluster":
      return "create the PostgreSQL cluster";
    case "edit-file":
      return `write ${s.file.path}`;
    case "remove-file":
      return `remove ${s.path}`;
    case "write-passfile":
      return `write the replication password to ${s.file.path} (0600)`;
    case "write-tls":
      return `write the CA, this host's certificate and its key (0600) to ${s.dir}`;
    case "control":
      return `${s.action} PostgreSQL`;
    case "restart-if-pending":
      return "restart PostgreSQL if a changed setting needs it";
    case "reset-auto-conf":
      return `reset ${s.settings.join(", ")} in postgresql.auto.conf`;
    case "ensure-role":
      return "create or update the replication role";
    case "app-roles":
      return `create or update the application role${s.roles.length > 1 ? "s" : ""} ${s.roles.join(", ")}`;
    case "app-databases":
      return [s.create.length ? `create database${s.create.length > 1 ? "s" : ""} ${s.create.join(", ")}` : "", s.connect.length ? `let only the named roles connect to ${s.connect.join(", ")}` : ""].filter(Boolean).join("; ");
    case "drop-slot":
      return `drop the replication slot ${s.slot} on ${s.host}`;
    case "slots":
      return [s.create.length ? `create replication slot${s.create.length > 1 ? "s" : ""} ${s.create.join(", ")}` : "", s.drop.length ? `drop unused slot${s.drop.length > 1 ? "s" : ""} ${s.drop.join(", ")}` : ""].filter(Boolean).join("; ");
    case "clone":
      return `clone from ${s.from} with ${s.method === "rsync" ? "the backup API and rsync" : "pg_basebackup"}${describeCompression(s.method, s.from, s.compress, s.compressNote)}`;
    case "wait-streaming":
      return `wait until it streams from ${s.upstream}`;
    case "catch-up":
      return `wait until it has replayed what ${s.primary} has written`;
    case "switchover":
      return `switch over from ${s.from} to ${s.host}`;
  }
}
