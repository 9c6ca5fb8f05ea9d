import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

/**
 * Memory and CPU of another process, read from /proc (Linux), so that the service is measured
 * from outside with no change to it.
 */

/** Resident set size in KiB (VmRSS), or null when the process is gone. */
export function readRssKiB(pid: number): number | null {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

let ticksPerSecond: number | undefined;

/**
 * CPU time the process has used so far, in ms (clock-tick resolution, usually 10 ms): user +
 * system, and system alone (time in the kernel: system calls, network stack).
 */
export function readCpuMs(pid: number): { total: number; system: number } | null {
  try {
    ticksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start at field 3 (state).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return { total: ((utime + stime) * 1000) / ticksPerSecond, system: (stime * 1000) / ticksPerSecond };
  } catch {
    return null;
  }
}

/** Samples a process's RSS every `intervalMs` until stopped; returns the highest value seen. */
export function sampleRssPeak(pid: number, intervalMs = 20): { stop(): number | null } {
  let peak: number | null = readRssKiB(pid);
  const timer = setInterval(() => {
    const rss = readRssKiB(pid);
    if (rss !== null && (peak === null || rss > peak)) peak = rss;
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      const rss = readRssKiB(pid);
      if (rss !== null && (peak === null || rss > peak)) peak = rss;
      return peak;
    },
  };
}

/** CPU time the whole machine has spent busy so far (all cores, all processes), in ms. */
export function readMachineBusyMs(): number | null {
  try {
    ticksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal: everything but idle and iowait is busy.
    const busy = fields.slice(0, 8).reduce((sum, value, index) => (index === 3 || index === 4 ? sum : sum + value), 0);
    return (busy * 1000) / ticksPerSecond;
  } catch {
    return null;
  }
}
