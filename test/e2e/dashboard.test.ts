/**
 * `recoverctl dashboard` as a user starts it: the URL it prints, the token, Ctrl-C, and every way of
 * starting it wrongly (one line on stderr, exit 2, nothing served).
 */
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { firstStdoutLine, hasStackTrace, runCli, spawnCli, tempDir } from '../support/cli.js';

describe('recoverctl dashboard', () => {
  it('prints its URL on 127.0.0.1, answers, and stops on Ctrl-C with exit 0', async () => {
    const dir = tempDir();
    const child = spawnCli(['dashboard', '--state-dir', join(dir, 'state'), '--port', '0'], { cwd: dir });
    const url = await firstStdoutLine(child);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const page = await fetch(url);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain(`No runs in <code>${join(dir, 'state')}</code> yet`);
    child.kill('SIGINT');
    const r = await child;
    expect(r.exitCode).toBe(0);
    expect(String(r.stderr)).toContain('dashboard stopped');
  });

  it('with --token-file: the URL carries the token, and nothing is served without it', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'token'), 'a-token-long-enough-for-this\n');
    const child = spawnCli(['dashboard', '--state-dir', dir, '--token-file', join(dir, 'token')], { cwd: dir });
    const url = await firstStdoutLine(child);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?token=a-token-long-enough-for-this$/);
    const base = url.replace(/\?.*$/, '');
    expect((await fetch(base)).status).toBe(401);
    expect((await fetch(`${base}api/runs`, { headers: { Authorization: 'Bearer a-token-long-enough-for-this' } })).status).toBe(200);
    child.kill('SIGTERM');
    expect((await child).exitCode).toBe(0);
  });

  it('refuses to start wrongly: beyond loopback without a token, a short token, two tokens, an unreadable token file, a bad or busy port', async () => {
    const dir = tempDir();
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const port = (busy.address() as { port: number }).port;
    try {
      const cases: [string[], RegExp][] = [
        [['--host', '0.0.0.0'], /^--host 0\.0\.0\.0: serving beyond loopback needs a token \(--token-file or --token\)$/],
        [['--token', 'short'], /^the dashboard token must be at least 16 characters/],
        [['--token', 'a-token-long-enough-for-this', '--token-file', 'x'], /^--token and --token-file: give one of them$/],
        [['--token-file', join(dir, 'missing')], /^--token-file .*missing: cannot read \(ENOENT\)$/],
        [['--port', 'eighty'], /^--port eighty: a port number, 0 for a free one$/],
        [['--port', String(port)], new RegExp(`^--port ${port} on 127\\.0\\.0\\.1: cannot listen \\(in use: pick another, or --port 0\\)$`)],
      ];
      for (const [args, message] of cases) {
        const r = await runCli(['dashboard', '--state-dir', dir, ...args], { cwd: dir });
        expect(r.exitCode, args.join(' ')).toBe(2);
        expect(r.stdout, args.join(' ')).toBe('');
        expect(r.stderr.trim().split('\n'), args.join(' ')).toEqual([expect.stringMatching(message)]);
        expect(hasStackTrace(r.stderr)).toBe(false);
      }
    } finally {
      busy.close();
    }
  });
});
