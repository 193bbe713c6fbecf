import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, tempDir } from '../support/cli.js';

describe('the baseline module of a new data dir', () => {
  it('is written whole and without its sourceMappingURL: nothing that loads it looks for a map that is not there', async () => {
    // The compiled store (npm test builds first): it copies the compiled module, as the engine does.
    const store = (await import(join(ROOT, 'dist/engine/module-store.js'))) as typeof import('../../src/engine/module-store.js');
    const dir = tempDir();
    store.ensureBaseline(dir);
    const file = store.modulePath(dir, 'margin', '1.4.2');
    const text = readFileSync(file, 'utf8');
    expect(readFileSync(store.bundledModule('1.4.2'), 'utf8')).toContain('sourceMappingURL');
    expect(text).not.toContain('sourceMappingURL');
    expect(readdirSync(join(dir, 'modules', 'margin'))).toEqual(['1.4.2.mjs']);
  });
});
