import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { nextMessage, track } from './processes';
import type { FromFloor, TargetSpec } from './protocol';
import { PROFILE_DIR } from './service-process';

/** The floor re-framer (floor-reframer.ts), running. */
export interface FloorProcess {
  child: ChildProcess;
  pid: number;
  /** Where the load generator sends its floor streams. */
  target: TargetSpec;
}

const isFloorReady = (message: unknown): message is FromFloor => (message as FromFloor).type === 'ready';

/**
 * Compiles floor-reframer.ts to plain JavaScript in `runDir`, forks it in front of `upstream`
 * (the direct target) and waits for its port; throws if it does not listen within 30 s.
 *
 * Plain `node`, as the service's build runs, not under tsx like the other bench children: tsx's
 * loader thread would add tens of MiB to the floor's RSS at start. The file imports only
 * `node:http` and types, so transpiling it alone is enough.
 */
export async function startFloor(upstream: TargetSpec, runDir: string): Promise<FloorProcess> {
  const source = readFileSync(path.join(__dirname, 'floor-reframer.ts'), 'utf8');
  const { outputText } = ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
    fileName: 'floor-reframer.ts',
  });
  const file = path.join(runDir, 'floor-reframer.js');
  writeFileSync(file, outputText);
  // BENCH_CPU_PROF=1: the floor's profile too (floor-*.cpuprofile), to set beside the service's.
  const profile = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`, `--cpu-prof-name=floor-${Date.now()}.cpuprofile`] : [];
  const child = track(fork(file, [JSON.stringify(upstream)], { execArgv: profile, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  const { port } = await nextMessage(child, isFloorReady, 30_000, 'floor re-framer start');
  return { child, pid: child.pid!, target: { kind: 'floor', port, path: '/', headers: {} } };
}
