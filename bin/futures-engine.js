#!/usr/bin/env node
// The futures engine as a process (SPEC section 4). Thin shim into the compiled code.
let engine;
try {
  engine = await import('../dist/engine/main.js');
} catch (e) {
  if (e && e.code === 'ERR_MODULE_NOT_FOUND' && String(e.message).includes('dist/engine/main.js')) {
    process.stderr.write('futures-engine: not built yet; run `npm run build` first\n');
    process.exit(3);
  }
  throw e;
}
await engine.main(process.argv.slice(2));
