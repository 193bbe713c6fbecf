import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { MarginModule } from './modules/api.js';
import { dataDirLayout } from '../util/data-dir.js';

export interface ComponentVersions {
  active: string;
  previous: string | null;
}
export type ActiveModules = Record<string, ComponentVersions>;

export const BASELINE = { component: 'margin', version: '1.4.2' } as const;
export const VERSION_RE = /^\d+\.\d+\.\d+$/;

export function modulePath(dataDir: string, component: string, version: string): string {
  return join(dataDir, 'modules', component, `${version}.mjs`);
}

/** The module files this engine ships, compiled beside this file. */
export function bundledModule(version: string): string {
  return fileURLToPath(new URL(`./modules/margin-${version}.js`, import.meta.url));
}

export function readActive(dataDir: string): ActiveModules | undefined {
  const file = dataDirLayout(dataDir).activeModules;
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8')) as ActiveModules;
}

export function writeActive(dataDir: string, active: ActiveModules): void {
  const file = dataDirLayout(dataDir).activeModules;
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(active, null, 2)}\n`);
  renameSync(tmp, file);
}

/** A fresh data dir gets the baseline module installed and active. */
export function ensureBaseline(dataDir: string): ActiveModules {
  const current = readActive(dataDir);
  if (current) return current;
  const target = modulePath(dataDir, BASELINE.component, BASELINE.version);
  mkdirSync(join(dataDir, 'modules', BASELINE.component), { recursive: true });
  // Without its sourceMappingURL: the map is not copied, and tools that follow the comment would fail.
  if (!existsSync(target)) {
    // Whole or not at all (temp file, then rename), like active.json: a torn module would never load.
    const tmp = `${target}.tmp-${process.pid}`;
    writeFileSync(tmp, readFileSync(bundledModule(BASELINE.version), 'utf8').replace(/\n\/\/# sourceMappingURL=.*\n?$/, '\n'));
    renameSync(tmp, target);
  }
  const active = { [BASELINE.component]: { active: BASELINE.version, previous: null } };
  writeActive(dataDir, active);
  return active;
}

export class ModuleRefused extends Error {}

/** Load a margin module from the data dir and run its self-test; a module that fails is refused. */
export async function loadMarginModule(dataDir: string, version: string): Promise<MarginModule> {
  if (!VERSION_RE.test(version)) throw new ModuleRefused(`'${version}' is not a version (x.y.z)`);
  const file = modulePath(dataDir, 'margin', version);
  if (!existsSync(file)) throw new ModuleRefused(`margin ${version} is not installed (${file})`);
  // The digest in the URL makes a reinstalled file load afresh instead of from the import cache.
  const digest = createHash('sha256').update(readFileSync(file)).digest('hex').slice(0, 16);
  let loaded: { default?: unknown };
  try {
    loaded = (await import(`${pathToFileURL(file).href}?sha=${digest}`)) as { default?: unknown };
  } catch (e) {
    throw new ModuleRefused(`margin ${version} failed to load: ${(e as Error).message}`);
  }
  const m = loaded.default as Partial<MarginModule> | undefined;
  if (!m || m.component !== 'margin' || typeof m.create !== 'function' || typeof m.selfTest !== 'function') {
    throw new ModuleRefused(`margin ${version}: not a margin module (default export must have component, version, create, selfTest)`);
  }
  if (m.version !== version) throw new ModuleRefused(`margin ${version}: the file says it is version ${String(m.version)}`);
  try {
    m.selfTest();
  } catch (e) {
    throw new ModuleRefused(`margin ${version} failed its self-test: ${(e as Error).message}`);
  }
  return m as MarginModule;
}
