import { join } from 'node:path';
import { writeFileAtomic } from '@purify/artifacts';
import { svgToPng } from './render';

/**
 * A run report written as Markdown (report.md, figures as PNG files next to it)
 * and as one self-contained HTML page (report.html, figures inline as SVG).
 */

type Block =
  | { kind: 'heading'; level: number; text: string }
  | { kind: 'paragraph'; text: string }
  | { kind: 'table'; header: readonly string[]; rows: readonly (readonly string[])[] }
  | { kind: 'figure'; file: string; svg: string; caption: string }
  | { kind: 'image'; file: string; caption: string }
  | { kind: 'code'; text: string };

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
/** Inline `code` and **bold** only: enough for captions and notes. */
const inline = (s: string): string => esc(s).replace(/`([^`]+)`/g, '<code>$1</code>').replace(/\*\*([^*]+)\*\*/g, '<strong>$1</strong>');

export class Report {
  private readonly blocks: Block[] = [];

  constructor(readonly title: string) {}

  heading(text: string, level = 2): this {
    this.blocks.push({ kind: 'heading', level, text });
    return this;
  }

  paragraph(text: string): this {
    this.blocks.push({ kind: 'paragraph', text });
    return this;
  }

  table(header: readonly string[], rows: readonly (readonly string[])[]): this {
    this.blocks.push({ kind: 'table', header, rows });
    return this;
  }

  /** An SVG chart; written as `<dir>/<file>` (PNG) for Markdown and inline for HTML. */
  figure(file: string, svg: string, caption: string): this {
    this.blocks.push({ kind: 'figure', file, svg, caption });
    return this;
  }

  /** An existing PNG (e.g. an overlay montage) relative to the report folder. */
  image(file: string, caption: string): this {
    this.blocks.push({ kind: 'image', file, caption });
    return this;
  }

  code(text: string): this {
    this.blocks.push({ kind: 'code', text });
    return this;
  }

  markdown(): string {
    const out = [`# ${this.title}`, ''];
    for (const b of this.blocks) {
      switch (b.kind) {
        case 'heading':
          out.push(`${'#'.repeat(b.level)} ${b.text}`, '');
          break;
        case 'paragraph':
          out.push(b.text, '');
          break;
        case 'table':
          out.push(`| ${b.header.join(' | ')} |`, `|${b.header.map(() => '---').join('|')}|`, ...b.rows.map((r) => `| ${r.join(' | ')} |`), '');
          break;
        case 'figure':
        case 'image':
          out.push(`![${b.caption}](${b.file})`, '', `*${b.caption}*`, '');
          break;
        case 'code':
          out.push('```', b.text, '```', '');
          break;
      }
    }
    return out.join('\n');
  }

  html(): string {
    const body: string[] = [];
    for (const b of this.blocks) {
      switch (b.kind) {
        case 'heading':
          body.push(`<h${b.level}>${inline(b.text)}</h${b.level}>`);
          break;
        case 'paragraph':
          body.push(`<p>${inline(b.text)}</p>`);
          break;
        case 'table':
          body.push(
            `<table><thead><tr>${b.header.map((h) => `<th>${inline(h)}</th>`).join('')}</tr></thead><tbody>${b.rows
              .map((r) => `<tr>${r.map((c) => `<td>${inline(c)}</td>`).join('')}</tr>`)
              .join('')}</tbody></table>`,
          );
          break;
        case 'figure':
          body.push(`<figure>${b.svg.replace(/^<\?xml[^>]*>/, '')}<figcaption>${inline(b.caption)}</figcaption></figure>`);
          break;
        case 'image':
          body.push(`<figure><img src="${esc(b.file)}" alt="${esc(b.caption)}"/><figcaption>${inline(b.caption)}</figcaption></figure>`);
          break;
        case 'code':
          body.push(`<pre>${esc(b.text)}</pre>`);
          break;
      }
    }
    return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(this.title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}th:first-child,td:first-child{text-align:left}
figure{margin:1.5em 0}figcaption{color:#555;font-size:90%}img{max-width:100%;image-rendering:pixelated}pre{background:#f6f6f6;padding:1em;overflow:auto}</style>
</head><body><h1>${esc(this.title)}</h1>
${body.join('\n')}
</body></html>
`;
  }

  /** Writes report.md, report.html and every figure's PNG into `dir`; returns their paths. */
  write(dir: string): { markdown: string; html: string; figures: string[] } {
    const figures: string[] = [];
    for (const b of this.blocks) {
      if (b.kind === 'figure') {
        const path = join(dir, b.file);
        writeFileAtomic(path, svgToPng(b.svg));
        figures.push(path);
      }
    }
    const markdown = join(dir, 'report.md');
    const html = join(dir, 'report.html');
    writeFileAtomic(markdown, this.markdown());
    writeFileAtomic(html, this.html());
    return { markdown, html, figures };
  }
}

/** "0.912 ± 0.031" (population std), "0.912" for one value, "–" without values. */
export function meanStd(values: readonly number[], digits = 3): string {
  const v = values.filter(Number.isFinite);
  if (v.length === 0) return '–';
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  // One value has no spread to report: "± 0" would claim a measured std.
  if (v.length === 1) return mean.toFixed(digits);
  const std = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
  return `${mean.toFixed(digits)} ± ${std.toFixed(digits)}`;
}
