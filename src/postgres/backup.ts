import { PgrepError, lastLines } from "../errors.js";
import type { Spawned } from "../transport/types.js";
import { psqlArgv, sqlLiteral, type SqlTarget } from "./sql.js";
import type { Capabilities } from "./versions.js";

// The low-level base backup API. A non-exclusive backup belongs to the session that started it, so one
// psql session is held open from start to stop. If pgrep dies, the session's stdin closes, psql exits and
// the server aborts the backup by itself: no backup is ever left in progress.

export interface BackupResult {
  lsn: string;
  labelfile: string;
  spcmapfile: string;
}

export class BackupSession {
  private output = "";
  private waiters: (() => void)[] = [];
  private finished = false;

  private constructor(
    private readonly p: Spawned,
    private readonly host: string,
    private readonly caps: Capabilities,
  ) {
    void p.done.then(() => {
      this.finished = true;
      this.wake();
    });
  }

  static async start(target: SqlTarget, caps: Capabilities, label: string, host: string, timeoutMs = 600_000): Promise<BackupSession> {
    const session = new BackupSession(
      target.t.spawn(psqlArgv(target), { user: target.osUser, onOutput: (chunk, stream) => stream === "stdout" && session.take(chunk) }),
      host,
      caps,
    );
    // fast = true: an immediate checkpoint, so the copy does not wait for the next scheduled one.
    const start = caps.backupApi.takesExclusiveArg
      ? `${caps.backupApi.start}(${sqlLiteral(label)}, true, false)` // false: never the exclusive mode
      : `${caps.backupApi.start}(${sqlLiteral(label)}, true)`;
    session.p.write(`SET application_name = 'pgrep_backup';\nSET statement_timeout = 0;\nSELECT 'PGREP_STARTED ' || ${start};\n`);
    await session.line("PGREP_STARTED ", timeoutMs, "starting the backup");
    return session;
  }

  /** Stops the backup in the same session and returns what the copy's backup_label must hold. */
  async stop(timeoutMs = 300_000): Promise<BackupResult> {
    const b64 = (col: string) => `coalesce(translate(encode(convert_to(${col}, 'UTF8'), 'base64'), E'\\n', ''), '')`;
    const from = this.caps.backupApi.takesExclusiveArg ? `${this.caps.backupApi.stop}(false, false)` : `${this.caps.backupApi.stop}(false)`;
    this.p.write(`SELECT 'PGREP_STOPPED ' || lsn || ' ' || ${b64("labelfile")} || ' .' || ${b64("spcmapfile")} FROM ${from};\n`);
    const [lsn, label, map] = (await this.line("PGREP_STOPPED ", timeoutMs, "stopping the backup")).split(" ");
    this.p.end();
    await this.p.done;
    return {
      lsn: lsn!,
      labelfile: Buffer.from(label ?? "", "base64").toString("utf8"),
      spcmapfile: Buffer.from((map ?? ".").slice(1), "base64").toString("utf8"),
    };
  }

  /** Ends the session; the server then aborts the backup. */
  async abort(): Promise<void> {
    this.p.end();
    const timer = setTimeout(() => this.p.kill(), 10_000);
    await this.p.done;
    clearTimeout(timer);
  }

  private take(chunk: string): void {
    this.output += chunk;
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  private async line(prefix: string, timeoutMs: number, what: string): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.output.split("\n").find((l) => l.startsWith(prefix) && this.output.includes(`${l}\n`));
      if (line) return line.slice(prefix.length).trim();
      if (this.finished) {
        const r = await this.p.done;
        throw new PgrepError(`${this.host}: ${what} failed: ${lastLines(r.stderr || r.stdout, 3) || `psql exited (${r.exitCode ?? r.signal})`}`);
      }
      if (Date.now() > deadline) throw new PgrepError(`${this.host}: ${what} took longer than ${Math.round(timeoutMs / 1000)} s`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(0, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }
}
