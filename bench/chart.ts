// A line chart as SVG text, drawn from the benchmark's own numbers: one x axis (a count), seconds up the
// y axis, one polyline per series. Small enough that a charting library would be the larger part.

export interface Line {
  name: string;
  colour: string;
  /** [x, seconds] */
  points: [number, number][];
}

const W = 720;
const H = 400;
const M = { left: 60, right: 230, top: 40, bottom: 50 };

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** A "nice" step for about five ticks up to max. */
function tickStep(max: number): number {
  const raw = max / 5;
  const p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((k) => k * p).find((s) => s >= raw)!;
}

export function lineChart(title: string, xLabel: string, lines: Line[]): string {
  const xs = [...new Set(lines.flatMap((l) => l.points.map((p) => p[0])))].sort((a, b) => a - b);
  const maxY = Math.max(...lines.flatMap((l) => l.points.map((p) => p[1])), 0.001);
  const step = tickStep(maxY);
  const top = Math.ceil(maxY / step) * step;
  const [x0, x1] = [xs[0]!, xs.at(-1)!];
  const px = (x: number) => M.left + ((x - x0) / (x1 - x0 || 1)) * (W - M.left - M.right);
  const py = (y: number) => H - M.bottom - (y / top) * (H - M.top - M.bottom);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${M.left}" y="22" font-size="14" font-weight="bold">${esc(title)}</text>`,
  ];
  for (let y = 0; y <= top + 1e-9; y += step) {
    out.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${py(y)}" y2="${py(y)}" stroke="#e4e4e4"/>`);
    out.push(`<text x="${M.left - 8}" y="${py(y) + 4}" text-anchor="end">${Number(y.toFixed(3))} s</text>`);
  }
  for (const x of xs) out.push(`<text x="${px(x)}" y="${H - M.bottom + 18}" text-anchor="middle">${x}</text>`);
  out.push(`<text x="${(M.left + W - M.right) / 2}" y="${H - 12}" text-anchor="middle">${esc(xLabel)}</text>`);
  out.push(`<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${H - M.bottom}" stroke="#888"/>`);
  out.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${H - M.bottom}" y2="${H - M.bottom}" stroke="#888"/>`);
  lines.forEach((l, i) => {
    const pts = [...l.points].sort((a, b) => a[0] - b[0]);
    out.push(`<polyline fill="none" stroke="${l.colour}" stroke-width="2" points="${pts.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(" ")}"/>`);
    for (const [x, y] of pts) out.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="3" fill="${l.colour}"><title>${esc(l.name)}: ${x} → ${y.toFixed(2)} s</title></circle>`);
    const ly = M.top + 10 + i * 20;
    out.push(`<line x1="${W - M.right + 15}" x2="${W - M.right + 35}" y1="${ly}" y2="${ly}" stroke="${l.colour}" stroke-width="2"/>`);
    out.push(`<text x="${W - M.right + 40}" y="${ly + 4}">${esc(l.name)}</text>`);
  });
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}
