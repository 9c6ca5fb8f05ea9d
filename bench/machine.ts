import { readFileSync } from 'node:fs';
import os from 'node:os';

export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  os: string;
  node: string;
}

/** What the figures were measured on: they mean little without it. */
export function describeMachine(): Machine {
  let distribution = os.type();
  try {
    distribution = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? distribution;
  } catch {
    // not Linux, or no os-release: keep os.type()
  }
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${distribution} (${os.type()} ${os.release()}, ${os.arch()})`,
    node: process.version,
  };
}

/** The rows every report's machine table starts with; each adds the servers it used. */
export function machineRows(machine: Machine): string[][] {
  return [
    ['CPU', `${machine.cpu}, ${machine.cores} cores`],
    ['memory', `${machine.memoryGiB} GiB`],
    ['OS', machine.os],
    ['Node.js', machine.node],
  ];
}
