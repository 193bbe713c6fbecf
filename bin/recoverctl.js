#!/usr/bin/env node
// Thin shim into the compiled code (npm run build writes dist/).
import { existsSync } from 'node:fs';

const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('recoverctl: not built yet; run `npm run build` first\n');
  process.exit(3);
}
const { main } = await import(entry.href);
await main(process.argv);
