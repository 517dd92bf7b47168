// The share of this VM's CPU time the hypervisor gave to other guests (the `steal` column of
// /proc/stat) between two snapshots: a benchmark run that was slow because the machine was
// shared says so in its table instead of passing for slow code. Undefined where there is no
// /proc/stat.
import { readFileSync } from 'node:fs';

export interface CpuTimes {
  readonly steal: number;
  readonly total: number;
}

export function cpuTimes(): CpuTimes | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
    const ticks = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal (guest time is counted in user already)
    const used = ticks.slice(0, 8);
    return { steal: ticks[7] ?? 0, total: used.reduce((a, b) => a + b, 0) };
  } catch {
    return undefined;
  }
}

/** Steal between `before` and `after` as a percentage of all CPU time, e.g. "3.2 %"; "n/a" without data. */
export function stealBetween(before: CpuTimes | undefined, after: CpuTimes | undefined): string {
  if (!before || !after || after.total <= before.total) return 'n/a';
  return `${((100 * (after.steal - before.steal)) / (after.total - before.total)).toFixed(1)} %`;
}
