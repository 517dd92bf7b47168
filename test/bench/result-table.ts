// The table a benchmark prints: one row per measure, with its value, its target and a verdict.
// Not a test.

export interface Row {
  readonly measure: string;
  readonly value: string;
  readonly target: string;
  readonly verdict: string;
}

export function printTable(rows: readonly Row[]): void {
  const header: Row = { measure: 'measure', value: 'value', target: 'target', verdict: 'pass/fail' };
  const all = [header, ...rows];
  const width = (k: keyof Row): number => all.reduce((w, r) => Math.max(w, r[k].length), 0);
  const widths = { measure: width('measure'), value: width('value'), target: width('target') };
  const line = (r: Row) => `${r.measure.padEnd(widths.measure)} | ${r.value.padEnd(widths.value)} | ${r.target.padEnd(widths.target)} | ${r.verdict}`;
  console.log(line(header));
  console.log(`${'-'.repeat(widths.measure)}-+-${'-'.repeat(widths.value)}-+-${'-'.repeat(widths.target)}-+-${'-'.repeat(9)}`);
  for (const r of rows) console.log(line(r));
}
