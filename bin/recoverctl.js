#!/usr/bin/env node
// Thin shim into the compiled CLI (npm run build writes dist/).
let cli;
try {
  cli = await import('../dist/cli/main.js');
} catch (e) {
  if (e && e.code === 'ERR_MODULE_NOT_FOUND' && String(e.message).includes('dist/cli/main.js')) {
    process.stderr.write('recoverctl: not built yet; run `npm run build` first\n');
    process.exit(3);
  }
  throw e;
}
await cli.main(process.argv);
