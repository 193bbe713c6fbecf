import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import type { EngineClient } from '../../src/engine-client/client.js';
import { readEngineInfo, startEngine, stopEngine, type StartOptions } from '../../src/engine-client/supervisor.js';
import { ROOT, tempDir } from './cli.js';

const started = new Set<string>();

/** A real engine child process on an ephemeral loopback port in a temp dir; stopped after each test. */
export async function startTestEngine(o: StartOptions & { dataDir?: string } = {}): Promise<{ dir: string; client: EngineClient; pid: number }> {
  const dir = o.dataDir ?? join(tempDir('recoverctl-engine-'), 'data');
  started.add(dir);
  const r = await startEngine(dir, { feedInterval: '0ms', exitWithMe: true, ...o });
  return { dir, client: r.client, pid: r.info.pid };
}

/** Install the compiled hotfix module into a data dir, as hotfix.deploy does. */
export function installModule(dir: string, version: string): void {
  mkdirSync(join(dir, 'modules', 'margin'), { recursive: true });
  copyFileSync(join(ROOT, 'dist', 'engine', 'modules', `margin-${version}.js`), join(dir, 'modules', 'margin', `${version}.mjs`));
}

export function trackEngineDir(dir: string): void {
  started.add(dir);
}

afterEach(async () => {
  for (const dir of started) {
    const info = readEngineInfo(dir);
    await stopEngine(dir, 5_000).catch(() => undefined);
    if (info) {
      try {
        process.kill(info.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  started.clear();
});
