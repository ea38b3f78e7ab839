import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Client, ClientChannel, ConnectConfig } from "ssh2";
import { CommandError, PgrepError, UnreachableError, type RunResult } from "../errors.js";
import { becomeArgv } from "./become.js";
import { fingerprint, keyType, type KnownHosts } from "./known-hosts.js";
import { shellCommand } from "./quote.js";
import { HEARTBEAT_MS, HEARTBEAT_SCRIPT, pidStripper, tethered } from "./tether.js";
import type { RunOptions, Spawned, Transport } from "./types.js";

export interface SshTarget {
  name: string; // inventory host name, used in messages
  host: string; // what to dial
  port: number;
  user: string;
  identityFile?: string;
  knownHosts: KnownHosts;
  /** Record keys of hosts not yet in known_hosts (like StrictHostKeyChecking=accept-new). Changed keys are always refused. */
  acceptNewHostKeys: boolean;
  connectTimeoutMs?: number;
  /** Never offer the agent's keys (IdentitiesOnly). */
  identitiesOnly?: boolean;
  /** A hop to other hosts (a bastion): no commands run there, so no heartbeat. */
  hop?: boolean;
}

/** Counts connections opened by this process, so benchmarks and tests can check "one per host". */
export const sshStats = { connections: 0 };

let ssh2: Promise<typeof import("ssh2")> | undefined;
/** ssh2 takes ~70 ms to load (it checks the crypto it can use): loaded once a host is being dialled. */
function loadSsh2(): Promise<typeof import("ssh2")> {
  return (ssh2 ??= import("ssh2"));
}

/**
 * A TCP connection to a host's sshd, opened before ssh2 is loaded: sshd accepts it and starts the
 * session's process while pgrep is still loading the library. Its error, if any, is kept for connect().
 */
export interface OpenedSocket {
  /** A TCP socket, or a channel forwarded through a jump host. */
  sock: Duplex & { unref?: () => unknown };
  openedAt: number;
  error: Error | undefined;
}

export function openSocket(host: string, port: number): OpenedSocket {
  // pgrep's own socket, without Nagle's algorithm: with it, each command's small packets waited for the
  // server's delayed ACK (about 40 ms a round trip, on every command).
  const sock = new Socket();
  sock.setNoDelay(true);
  const opened: OpenedSocket = { sock, openedAt: Date.now(), error: undefined };
  sock.on("error", (e) => (opened.error ??= e));
  sock.connect({ host, port });
  return opened;
}

/** One SSH connection per host for the whole run; each command is a channel on it. */
export class SshTransport implements Transport {
  /** The file the connection's heartbeat keeps on the host (see tether.ts), and its beat. */
  private readonly heartbeat = `/tmp/.pgrep-hb-${randomBytes(12).toString("hex")}`;
  private beat: { timer: NodeJS.Timeout; channel: ClientChannel } | undefined;

  private constructor(
    readonly host: string,
    readonly loginUser: string,
    private readonly client: Client,
    private readonly sock: OpenedSocket["sock"],
  ) {}

  /**
   * A connection to host:port from this host (a jump host's sshd connects; direct-tcpip), for the next
   * SSH connection to run over. Bounded by `timeoutMs`: a host behind that does not answer is not waited for.
   */
  forward(host: string, port: number, timeoutMs: number): Promise<OpenedSocket> {
    const openedAt = Date.now();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`Timed out: no connection to ${host}:${port} from ${this.host} within ${timeoutMs / 1000} s`)), timeoutMs);
      this.client.forwardOut("127.0.0.1", 0, host, port, (err, channel) => {
        clearTimeout(timer);
        if (err) return reject(new Error(`${this.host} could not connect to ${host}:${port}: ${err.message}`));
        channel.on("error", () => {});
        resolve({ sock: channel, openedAt, error: undefined });
      });
    });
  }

  /**
   * Starts the heartbeat: a channel whose command bumps a counter for every line pgrep sends. Without
   * it (it could not start), commands still end with the connection, as sshd sees it.
   */
  private startHeartbeat(): void {
    // Itself under the tether, on its own counter: silent, it ends too.
    this.client.exec(shellCommand(tethered("sshd", ["sh", "-c", HEARTBEAT_SCRIPT, "pgrep-heartbeat", this.heartbeat], this.heartbeat)), (err, channel) => {
      if (err) return;
      channel.on("error", () => {});
      channel.resume();
      channel.stderr.resume();
      channel.write("\n");
      const timer = setInterval(() => channel.write("\n"), HEARTBEAT_MS);
      timer.unref();
      this.beat = { timer, channel };
    });
  }

  /** `opened`: the host's TCP connection, opened (openSocket) before ssh2 is loaded. */
  static async connect(t: SshTarget, opened: OpenedSocket): Promise<SshTransport> {
    const lib = loadSsh2();
    let keyProblem: PgrepError | undefined;
    const pendingAdds: Promise<void>[] = [];
    const { sock } = opened;
    const config: ConnectConfig = {
      host: t.host,
      port: t.port,
      username: t.user,
      // Bounds TCP connect, handshake and authentication together, counted from the socket's opening: a
      // frozen host (its kernel completes the TCP handshake, sshd never answers) costs this much once per
      // command, never more.
      readyTimeout: Math.max(1, (t.connectTimeoutMs ?? 3_000) - (Date.now() - opened.openedAt)),
      // A host that freezes after connecting is declared gone after about 3 missed keepalives.
      keepaliveInterval: 5_000,
      keepaliveCountMax: 3,
      hostVerifier: (raw: Buffer) => {
        const key = { type: keyType(raw), blob: raw };
        const check = t.knownHosts.check(t.host, t.port, key);
        const fp = fingerprint(raw);
        switch (check.status) {
          case "known":
            return true;
          case "unknown":
            if (t.acceptNewHostKeys) {
              pendingAdds.push(t.knownHosts.add(t.host, t.port, key));
              return true;
            }
            keyProblem = new UnreachableError(
              t.name,
              `unknown SSH host key ${key.type} ${fp} for ${t.host}:${t.port}`,
              `verify the fingerprint, then add it to ${t.knownHosts.path} or re-run with --accept-new-host-keys`,
              undefined,
              false,
            );
            return false;
          case "changed":
            keyProblem = new UnreachableError(
              t.name,
              `SSH host key for ${t.host}:${t.port} has CHANGED (now ${key.type} ${fp}, known_hosts has ${check.expected.join(", ")})`,
              `if the host was really reinstalled, remove its old line from ${t.knownHosts.path}; pgrep never accepts a changed key`,
              undefined,
              false,
            );
            return false;
          case "revoked":
            keyProblem = new UnreachableError(t.name, `SSH host key ${fp} for ${t.host}:${t.port} is revoked in ${t.knownHosts.path}`, undefined, undefined, false);
            return false;
        }
      },
    };
    if (t.identityFile) {
      try {
        config.privateKey = await readFile(t.identityFile);
      } catch (e) {
        throw new UnreachableError(t.name, `cannot read SSH identity file ${t.identityFile}: ${(e as Error).message}`, undefined, undefined, false);
      }
      // The key alone: ssh2 would first try "none", a round trip that sshd always refuses.
      config.authHandler = ["publickey"];
    } else if (process.env.SSH_AUTH_SOCK && !t.identitiesOnly) {
      config.agent = process.env.SSH_AUTH_SOCK;
      config.authHandler = ["agent"];
    }
    const client = new (await lib).Client();
    // ssh2 may emit several errors (and a close) for one failed handshake: settle on the first, and keep
    // a listener for the life of the client so that no error is ever unhandled.
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (err?: PgrepError) => {
        if (settled) return;
        settled = true;
        if (err) reject(err);
        else resolve();
      };
      client.on("ready", () => settle());
      client.on("error", (err: Error & { level?: string; code?: string }) => settle(keyProblem ?? describeConnectError(t, err)));
      client.on("close", () => settle(keyProblem ?? new UnreachableError(t.name, `SSH connection to ${t.user}@${t.host}:${t.port} closed during the handshake`)));
      sshStats.connections++;
      // Refused, the name did not resolve, or closed at once (a proxy in front of a host whose sshd is
      // gone accepts, then closes), before ssh2 was there to see it: said as ssh2 would have.
      if (opened.error) return settle(describeConnectError(t, opened.error));
      if (sock.destroyed || sock.readableEnded) return settle(describeConnectError(t, new Error("Connection lost before handshake")));
      client.connect({ ...config, sock });
    });
    await Promise.all(pendingAdds);
    const transport = new SshTransport(t.name, t.user, client, sock);
    if (!t.hop) transport.startHeartbeat();
    return transport;
  }

  run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    const p = this.spawn(argv, opts, opts.env);
    if (opts.stdin !== undefined) p.write(typeof opts.stdin === "string" ? opts.stdin : opts.stdin.toString("utf8"));
    p.end();
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    if (opts.timeoutMs) {
      timer = setTimeout(() => {
        timedOut = true;
        p.kill();
      }, opts.timeoutMs);
    }
    return p.done.then((r) => {
      if (timer) clearTimeout(timer);
      const result = timedOut ? { ...r, exitCode: null, signal: "TIMEOUT" } : r;
      if (result.exitCode !== 0 && !opts.allowFailure) throw new CommandError(result, opts.what);
      return result;
    });
  }

  spawn(argv: readonly string[], opts: Pick<RunOptions, "user" | "onOutput" | "onStarted"> = {}, env?: Record<string, string>): Spawned {
    const envPrefix = env ? ["env", ...Object.entries(env).map(([k, v]) => `${k}=${v}`)] : [];
    const inner = [...envPrefix, ...argv];
    // Shown in messages without the wrapper; sent inside it, so that it dies with this connection.
    const command = shellCommand(becomeArgv(this.loginUser, opts.user, inner));
    // The wrapper runs as the command's own user, inside sudo: its watchdog can then signal every process
    // of the command. Outside, as the login user, it could signal sudo alone, which passes a TERM on to
    // the command but not to what the command forked (pg_basebackup's WAL streamer went on streaming).
    const wrapped = becomeArgv(this.loginUser, opts.user, tethered("sshd", inner, this.heartbeat));
    const started = Date.now();
    let channel: ClientChannel | undefined;
    let pid: number | undefined;
    let killWanted = false;
    const pending: (["write", string] | ["end"])[] = [];
    const apply = (op: ["write", string] | ["end"]) => {
      if (!channel) return void pending.push(op);
      if (op[0] === "write") channel.write(op[1]);
      else channel.end();
    };
    // The wrapper passes a TERM to the command's process group (and a KILL if it is still there 3 s later).
    const kill = () => {
      killWanted = true;
      if (pid !== undefined) this.client.exec(shellCommand(becomeArgv(this.loginUser, opts.user, ["kill", "-TERM", String(pid)])), (err, s) => void (err ? undefined : s.resume()));
    };
    const stripPid = pidStripper((p) => {
      pid = p;
      if (killWanted) kill();
      opts.onStarted?.();
    });
    const done = new Promise<RunResult>((resolve) => {
      this.client.exec(shellCommand(wrapped), (err: Error | undefined, stream: ClientChannel) => {
        const result = (exitCode: number | null, signal: string | null, stdout: string, stderr: string): RunResult => ({
          host: this.host,
          command,
          exitCode,
          signal,
          stdout,
          stderr,
          durationMs: Date.now() - started,
        });
        if (err) return resolve(result(null, "SSH", "", `cannot run a command over SSH: ${err.message}`));
        let stdout = "";
        let stderr = "";
        stream.on("data", (d: Buffer) => {
          const s = d.toString();
          stdout += s;
          opts.onOutput?.(s, "stdout");
        });
        stream.stderr.on("data", (d: Buffer) => {
          const s = stripPid(d.toString());
          if (!s) return;
          stderr += s;
          opts.onOutput?.(s, "stderr");
        });
        stream.on("error", () => {});
        stream.on("close", (code: number | null, signal?: string) => resolve(result(code ?? null, signal ?? (code === null ? "closed" : null), stdout, stderr)));
        channel = stream;
        for (const op of pending.splice(0)) apply(op);
      });
    });
    return { write: (t) => apply(["write", t]), end: () => apply(["end"]), kill, done };
  }

  /**
   * Says goodbye and does not wait for the server to close its side: that took sshd ~0.1 s of tearing down
   * the session after every command. Nothing is left to wait for by then: every command has ended and the
   * cluster lock was released first (its holder gone), so the next pgrep finds the cluster free.
   */
  async close(): Promise<void> {
    if (this.beat) clearInterval(this.beat.timer);
    this.client.end();
    this.sock.unref?.();
  }
}

function describeConnectError(t: SshTarget, err: Error & { level?: string; code?: string }): UnreachableError {
  const where = `${t.user}@${t.host}:${t.port}`;
  if (err.level === "client-authentication")
    return new UnreachableError(t.name, `SSH authentication failed for ${where}`, "check ssh.user and ssh.identity_file in the inventory", undefined, false);
  if (err.code === "ECONNREFUSED") return new UnreachableError(t.name, `SSH connection refused by ${where}`, "is sshd running, and is ssh.port right?");
  if (err.code === "ENOTFOUND" || err.code === "EAI_AGAIN") return new UnreachableError(t.name, `cannot resolve ${t.host}`, "check the host's address in the inventory");
  if (err.level === "client-timeout" || err.code === "ETIMEDOUT" || /Timed out/i.test(err.message))
    return new UnreachableError(t.name, `SSH connection to ${where} timed out after ${(t.connectTimeoutMs ?? 3_000) / 1000} s`, "is the host up and the port reachable? (ssh.connect_timeout sets how long to wait)");
  return new UnreachableError(t.name, `SSH connection to ${where} failed: ${err.message}`);
}
