/**
 * Small SVG chart builders for run reports: line charts (learning curves),
 * box plots (Dice per case), and grouped histograms (weight distributions over
 * rounds). Output is a standalone SVG document; {@link svgToPng} rasterises it.
 */

export interface Series {
  readonly name: string;
  /** (x, y) points; NaN y values leave a gap. */
  readonly points: readonly (readonly [number, number])[];
}

export interface Axes {
  readonly title: string;
  readonly xLabel?: string;
  readonly yLabel?: string;
  /** Fixed y range; default: from the data. */
  readonly yRange?: readonly [number, number];
  readonly width?: number;
  readonly height?: number;
}

/** A colour-blind-safe palette (Okabe–Ito). */
export const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#D55E00', '#CC79A7', '#56B4E9', '#F0E442', '#000000'] as const;

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const fmt = (v: number): string => (Math.abs(v) >= 100 || Number.isInteger(v) ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(1) : v.toFixed(2));

/** About five round tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  if (hi <= lo) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

interface Frame {
  svg: string[];
  x: (v: number) => number;
  y: (v: number) => number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

function frame(axes: Axes, xRange: [number, number], yRange: [number, number], xTicks: number[] | undefined): Frame {
  const width = axes.width ?? 640;
  const height = axes.height ?? 360;
  const left = 64;
  const right = width - 150;
  const top = 36;
  const bottom = height - 48;
  const [x0, x1] = xRange[1] > xRange[0] ? xRange : [xRange[0] - 0.5, xRange[0] + 0.5];
  const [y0, y1] = yRange[1] > yRange[0] ? yRange : [yRange[0] - 0.5, yRange[0] + 0.5];
  const x = (v: number): number => left + ((v - x0) / (x1 - x0)) * (right - left);
  const y = (v: number): number => bottom - ((v - y0) / (y1 - y0)) * (bottom - top);
  const svg = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${esc(axes.title)}</text>`,
    `<line x1="${left}" y1="${bottom}" x2="${right}" y2="${bottom}" stroke="#333"/>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${bottom}" stroke="#333"/>`,
  ];
  for (const t of niceTicks(y0, y1)) {
    svg.push(`<line x1="${left - 4}" y1="${y(t)}" x2="${right}" y2="${y(t)}" stroke="#ddd"/>`, `<text x="${left - 8}" y="${y(t) + 4}" text-anchor="end">${fmt(t)}</text>`);
  }
  for (const t of xTicks ?? niceTicks(x0, x1)) {
    svg.push(`<line x1="${x(t)}" y1="${bottom}" x2="${x(t)}" y2="${bottom + 4}" stroke="#333"/>`, `<text x="${x(t)}" y="${bottom + 18}" text-anchor="middle">${fmt(t)}</text>`);
  }
  if (axes.xLabel) svg.push(`<text x="${(left + right) / 2}" y="${height - 10}" text-anchor="middle">${esc(axes.xLabel)}</text>`);
  if (axes.yLabel) svg.push(`<text x="16" y="${(top + bottom) / 2}" text-anchor="middle" transform="rotate(-90 16 ${(top + bottom) / 2})">${esc(axes.yLabel)}</text>`);
  return { svg, x, y, left, right, top, bottom };
}

function legend(f: Frame, names: readonly string[]): void {
  names.forEach((name, i) => {
    const yy = f.top + 8 + i * 18;
    f.svg.push(`<rect x="${f.right + 12}" y="${yy - 8}" width="12" height="12" fill="${PALETTE[i % PALETTE.length]}"/>`, `<text x="${f.right + 30}" y="${yy + 2}">${esc(name)}</text>`);
  });
}

function extent(values: number[], fallback: [number, number]): [number, number] {
  const finite = values.filter(Number.isFinite);
  return finite.length === 0 ? fallback : [Math.min(...finite), Math.max(...finite)];
}

/** Line chart: one polyline per series (gaps at NaN). */
export function lineChart(axes: Axes, series: readonly Series[]): string {
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  const f = frame(axes, extent(xs, [0, 1]), axes.yRange ? [axes.yRange[0], axes.yRange[1]] : extent(ys, [0, 1]), undefined);
  series.forEach((s, i) => {
    const colour = PALETTE[i % PALETTE.length];
    let run: string[] = [];
    const flush = (): void => {
      if (run.length > 1) f.svg.push(`<polyline fill="none" stroke="${colour}" stroke-width="2" points="${run.join(' ')}"/>`);
      else if (run.length === 1) {
        const [cx, cy] = (run[0] as string).split(',');
        f.svg.push(`<circle cx="${cx}" cy="${cy}" r="3" fill="${colour}"/>`);
      }
      run = [];
    };
    for (const [px, py] of s.points) {
      if (Number.isFinite(py)) run.push(`${f.x(px).toFixed(1)},${f.y(py).toFixed(1)}`);
      else flush();
    }
    flush();
  });
  legend(f, series.map((s) => s.name));
  f.svg.push('</svg>');
  return f.svg.join('\n');
}

/** Tukey box plot per group: box = quartiles (type 7), whiskers = 1.5 IQR, points beyond. */
export function boxPlot(axes: Axes, groups: readonly { name: string; values: readonly number[] }[]): string {
  const all = groups.flatMap((g) => g.values.filter(Number.isFinite));
  const f = frame(axes, [0, groups.length + 1], axes.yRange ? [axes.yRange[0], axes.yRange[1]] : extent(all, [0, 1]), []);
  groups.forEach((g, i) => {
    const v = g.values.filter(Number.isFinite).slice().sort((a, b) => a - b);
    const cx = f.x(i + 1);
    f.svg.push(`<text x="${cx}" y="${f.bottom + 18}" text-anchor="middle">${esc(g.name)}</text>`);
    if (v.length === 0) return;
    const q = (p: number): number => {
      const pos = p * (v.length - 1);
      const lo = Math.floor(pos);
      const hi = Math.min(v.length - 1, lo + 1);
      return (v[lo] as number) + (pos - lo) * ((v[hi] as number) - (v[lo] as number));
    };
    const [q1, med, q3] = [q(0.25), q(0.5), q(0.75)];
    const iqr = q3 - q1;
    const inside = v.filter((x) => x >= q1 - 1.5 * iqr && x <= q3 + 1.5 * iqr);
    const lo = inside[0] ?? q1;
    const hi = inside[inside.length - 1] ?? q3;
    const w = Math.min(40, ((f.right - f.left) / (groups.length + 1)) * 0.5);
    const colour = PALETTE[i % PALETTE.length];
    f.svg.push(
      `<line x1="${cx}" y1="${f.y(lo)}" x2="${cx}" y2="${f.y(hi)}" stroke="#333"/>`,
      `<rect x="${cx - w / 2}" y="${f.y(q3)}" width="${w}" height="${Math.max(1, f.y(q1) - f.y(q3))}" fill="${colour}" fill-opacity="0.35" stroke="${colour}"/>`,
      `<line x1="${cx - w / 2}" y1="${f.y(med)}" x2="${cx + w / 2}" y2="${f.y(med)}" stroke="#000" stroke-width="2"/>`,
    );
    for (const x of v) if (x < lo || x > hi) f.svg.push(`<circle cx="${cx}" cy="${f.y(x)}" r="2.5" fill="none" stroke="#333"/>`);
  });
  f.svg.push('</svg>');
  return f.svg.join('\n');
}

/**
 * Histograms of values in [0, 1] (e.g. supervision weights) for several groups
 * (e.g. rounds), drawn as step lines of the fraction per bin.
 */
export function histogramChart(axes: Axes, groups: readonly { name: string; counts: readonly number[] }[]): string {
  const series: Series[] = groups.map((g) => {
    const total = g.counts.reduce((a, b) => a + b, 0) || 1;
    const bins = g.counts.length;
    return { name: g.name, points: g.counts.map((c, i) => [(i + 0.5) / bins, c / total] as const) };
  });
  return lineChart({ yRange: [0, 1], ...axes }, series);
}
