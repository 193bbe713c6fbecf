import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { InputError, UsageError } from '../errors.js';

/** A token shorter than this is refused: it guards a page anyone on the port can try. */
const MIN_TOKEN = 16;
const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/** The token from --token, --token-file or RECOVERCTL_DASHBOARD_TOKEN; null for none. */
function tokenOf(opts: { token?: string; tokenFile?: string }): string | null {
  if (opts.token !== undefined && opts.tokenFile !== undefined) throw new UsageError('--token and --token-file: give one of them');
  let token = opts.token ?? (process.env.RECOVERCTL_DASHBOARD_TOKEN || null);
  if (opts.tokenFile !== undefined) {
    try {
      token = readFileSync(resolve(opts.tokenFile), 'utf8').trim();
    } catch (e) {
      throw new InputError(`--token-file ${opts.tokenFile}: cannot read (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  if (token !== null && token.length < MIN_TOKEN)
    throw new UsageError(`the dashboard token must be at least ${MIN_TOKEN} characters (openssl rand -hex 16 makes one)`);
  return token;
}

/** `recoverctl dashboard`: serve the state dir's runs until Ctrl-C; prints the URL on stdout. */
export async function dashboardCommand(opts: { stateDir: string; port: string; host: string; token?: string; tokenFile?: string }): Promise<void> {
  const port = Number(opts.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port ${opts.port}: a port number, 0 for a free one`);
  const token = tokenOf(opts);
  if (!LOOPBACK.has(opts.host) && token === null) throw new UsageError(`--host ${opts.host}: serving beyond loopback needs a token (--token-file or --token)`);
  const { startDashboard } = await import('../dashboard/server.js');
  const stateDir = resolve(opts.stateDir);
  let dashboard;
  try {
    dashboard = await startDashboard({ stateDir, host: opts.host === 'localhost' ? '127.0.0.1' : opts.host, port, token });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(
      `--port ${port} on ${opts.host}: cannot listen (${code === 'EADDRINUSE' ? 'in use: pick another, or --port 0' : (code ?? (e as Error).message)})`,
    );
  }
  process.stdout.write(`${dashboard.url}\n`);
  process.stderr.write(`dashboard of ${stateDir}: read-only, Ctrl-C stops it\n`);
  await new Promise<void>((done) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      done();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await dashboard.close();
  process.stderr.write('dashboard stopped\n');
}
