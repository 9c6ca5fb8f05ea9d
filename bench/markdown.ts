/** Formatting shared by the reports (bench/results.md, bench/scale-results.md). */

/** ms with a precision that suits the size. */
export function ms(value: number | undefined | null): string {
  if (value === undefined || value === null || Number.isNaN(value)) return 'n/a';
  const abs = Math.abs(value);
  return abs < 10 ? value.toFixed(2) : abs < 100 ? value.toFixed(1) : value.toFixed(0);
}

export function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** A date as the reports print it: to the second, UTC. */
export function isoSeconds(date: Date): string {
  return date.toISOString().replace(/\.\d+Z$/, 'Z');
}
