// Progress of long copies: parsed from what pg_basebackup --progress and rsync --info=progress2 print,
// turned into percent, rate and time left. Pure; output.ts decides how it is shown.

export interface Sample {
  doneBytes: number;
  totalBytes: number;
}

function lastLine(chunk: string, re: RegExp): RegExpExecArray | undefined {
  let found: RegExpExecArray | undefined;
  for (const line of chunk.split(/[\r\n]/)) found = re.exec(line) ?? found;
  return found;
}

/** "123456/654321 kB (18%), 0/1 tablespace (…)" */
export function parseBasebackup(chunk: string): Sample | undefined {
  const m = lastLine(chunk, /^\s*(\d+)\/(\d+) kB \(\d+%\)/);
  return m ? { doneBytes: Number(m[1]) * 1024, totalBytes: Number(m[2]) * 1024 } : undefined;
}

/** "    123,456,789  45%   38.12MB/s    0:00:04 (xfr#12, to-chk=3/200)" */
export function parseRsync(chunk: string): Sample | undefined {
  const m = lastLine(chunk, /^\s*([\d,.]+)\s+(\d+)%\s/);
  if (!m) return undefined;
  const done = Number(m[1]!.replace(/[,.]/g, ""));
  const pct = Number(m[2]);
  return { doneBytes: done, totalBytes: pct > 0 ? Math.round((done * 100) / pct) : 0 };
}

/** The text without the lines that only report progress, so that an error shows its real cause. */
export function withoutProgressLines(text: string): string {
  return text
    .split(/[\r\n]/)
    .filter((l) => !/^\s*\d+\/\d+ kB \(\d+%\)/.test(l) && !/^\s*[\d,.]+\s+\d+%\s/.test(l))
    .join("\n");
}

const MB = 1024 * 1024;

export function formatBytes(n: number): string {
  if (n >= 10 * 1024 * MB) return `${(n / 1024 / MB).toFixed(0)} GB`;
  if (n >= 1024 * MB) return `${(n / 1024 / MB).toFixed(1)} GB`;
  return `${(n / MB).toFixed(n >= 10 * MB ? 0 : 1)} MB`;
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return "?";
  if (s < 60) return `${Math.ceil(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

/** Rate over a sliding window of recent samples, so that one slow second does not swing the estimate. */
export class Meter {
  private samples: { t: number; bytes: number }[] = [];
  private last: Sample | undefined;

  constructor(private readonly windowMs = 10_000) {}

  add(sample: Sample, now = Date.now()): void {
    this.last = sample;
    this.samples.push({ t: now, bytes: sample.doneBytes });
    while (this.samples.length > 2 && now - this.samples[0]!.t > this.windowMs) this.samples.shift();
  }

  /** Bytes per second, or undefined before there are two samples. */
  rate(): number | undefined {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || !last || last.t === first.t) return undefined;
    return Math.max(0, (last.bytes - first.bytes) / ((last.t - first.t) / 1000));
  }

  percent(): number | undefined {
    if (!this.last?.totalBytes) return undefined;
    return Math.min(100, Math.floor((this.last.doneBytes * 100) / this.last.totalBytes));
  }

  /** "45% of 1.2 GB, 38 MB/s, 4 s left" */
  describe(): string {
    const s = this.last;
    if (!s) return "starting";
    const pct = this.percent();
    const rate = this.rate();
    const parts = [pct !== undefined ? `${pct}% of ${formatBytes(s.totalBytes)}` : formatBytes(s.doneBytes)];
    if (rate !== undefined) parts.push(`${formatBytes(rate)}/s`);
    if (rate && s.totalBytes > s.doneBytes) parts.push(`${formatSeconds((s.totalBytes - s.doneBytes) / rate)} left`);
    return parts.join(", ");
  }
}
