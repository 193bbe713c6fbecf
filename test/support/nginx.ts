/**
 * A real nginx for integration tests, as any user can run it: everything (prefix, pid, temp paths, the
 * upstream file) in a temp dir, logs to stderr, listening on an ephemeral 127.0.0.1 port, started in the
 * foreground as a child process and stopped after each test. `test` and `reload` are the argv a
 * provider runs: the same prefix, config and globals, so the real nginx validates and reloads it.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './cli.js';
import { endChild, freePort, stopAfterTest, waitReady } from './haproxy.js';

export interface NginxOptions {
  /** The upstream name, default orders. */
  upstream?: string;
  /** The upstream file as it is before the shift (it must define the upstream). */
  upstreamText: string;
}

export interface TestNginx {
  dir: string;
  config: string;
  upstreamFile: string;
  frontendUrl: string;
  /** `nginx … -t` and `nginx … -s reload` for this instance. */
  test: string[];
  reload: string[];
  stop(): Promise<void>;
}

export function nginxConfig(o: { dir: string; port: number; upstream: string; upstreamFile: string }): string {
  const tmp = (name: string): string => `  ${name}_temp_path ${join(o.dir, 'tmp', name)};`;
  return [
    'worker_processes 1;',
    'events { worker_connections 64; }',
    'http {',
    '  access_log off;',
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(tmp),
    `  include ${o.upstreamFile};`,
    '  server {',
    `    listen 127.0.0.1:${o.port};`,
    `    location / { proxy_pass http://${o.upstream}; proxy_next_upstream off; }`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** A real nginx on an ephemeral loopback port, stopped after the test. */
export async function startNginx(o: NginxOptions): Promise<TestNginx> {
  const dir = tempDir('recoverctl-nginx-');
  mkdirSync(join(dir, 'tmp'));
  mkdirSync(join(dir, 'logs'));
  const port = await freePort();
  const upstream = o.upstream ?? 'orders';
  const upstreamFile = join(dir, 'conf.d', `${upstream}.conf`);
  mkdirSync(join(dir, 'conf.d'));
  writeFileSync(upstreamFile, o.upstreamText);
  const config = join(dir, 'nginx.conf');
  writeFileSync(config, nginxConfig({ dir, port, upstream, upstreamFile }));
  // -e stderr: never open the compiled-in /var/log/nginx/error.log, which a non-root user cannot.
  const base = ['nginx', '-e', 'stderr', '-p', `${dir}/`, '-c', config, '-g', `daemon off; pid ${join(dir, 'nginx.pid')}; error_log stderr;`];
  const child = spawn(base[0] as string, base.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const stop = stopAfterTest(() => endChild(child));
  const frontendUrl = `http://127.0.0.1:${port}/`;
  try {
    await waitReady(
      child,
      () => output,
      async () => (await fetch(frontendUrl, { signal: AbortSignal.timeout(2_000) }).then((r) => r.arrayBuffer())) !== null,
      'nginx',
    );
  } catch (e) {
    await stop();
    throw e;
  }
  return { dir, config, upstreamFile, frontendUrl, test: [...base, '-t'], reload: [...base, '-s', 'reload'], stop };
}
