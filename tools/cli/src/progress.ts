/**
 * A progress bar on stderr. On a terminal it redraws one line; otherwise (CI,
 * logs, pipes) it prints a line at most every few seconds and at the end, so
 * long work always shows it is alive without flooding logs.
 */
export class Progress {
  private readonly started = Date.now();
  private lastLine = 0;
  private readonly tty = Boolean(process.stderr.isTTY);

  constructor(
    private readonly label: string,
    private total: number,
    private readonly quiet = false,
  ) {}

  /** A new total for a stage whose length is known only as it runs (e.g. the source schedule's anneal, sized when the explore phase ends). */
  setTotal(total: number): void {
    this.total = total;
  }

  /** Reports `done` of `total` with an optional note (e.g. the current case or loss). */
  update(done: number, note = ''): void {
    if (this.quiet) return;
    const now = Date.now();
    const finished = done >= this.total;
    if (!this.tty && !finished && now - this.lastLine < 3000) return;
    this.lastLine = now;
    const fraction = this.total > 0 ? Math.min(1, done / this.total) : 1;
    const width = 24;
    const filled = Math.round(fraction * width);
    const bar = `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
    const elapsed = (now - this.started) / 1000;
    const eta = fraction > 0 && !finished ? ` eta ${formatSeconds((elapsed / fraction) * (1 - fraction))}` : '';
    const line = `${this.label} ${bar} ${done}/${this.total} ${formatSeconds(elapsed)}${eta}${note ? `  ${note}` : ''}`;
    if (this.tty) process.stderr.write(`\r\x1b[2K${line}${finished ? '\n' : ''}`);
    else process.stderr.write(`${line}\n`);
  }
}

export function formatSeconds(s: number): string {
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  return `${m}m${String(Math.round(s - m * 60)).padStart(2, '0')}s`;
}
