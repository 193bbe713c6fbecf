/**
 * Debian's real `prometheus` binary as a child process, on a free 127.0.0.1 port, with a generated config
 * and its TSDB in a temp dir. Whatever a test does, every instance started here is stopped (SIGTERM, then
 * SIGKILL) and its dir removed: after the file's tests, and on this process's exit at the latest.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { findBinary, freePort, stopChild } from '../../src/cli/rehearsal-infra.js';

/** The binary, or undefined when it is not installed (the tests that need it are skipped). */
export const PROMETHEUS_BIN = findBinary('prometheus');

export interface TestPrometheus {
  /** e.g. http://127.0.0.1:41234 */
  url: string;
  pid: number;
  dir: string;
  /** SIGTERM, SIGKILL after a grace period; removes the dir. Safe to call twice. */
  stop(): Promise<void>;
}

const live = new Set<TestPrometheus>();

afterAll(async () => {
  await Promise.all([...live].map((p) => p.stop()));
});

// A worker that dies without running its hooks still takes its Prometheus servers with it.
const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

export { freePort };

/** prometheus.yml: YAML is a superset of JSON, so the config is written as JSON (no quoting to get wrong). */
function configFor(scrapeTargets: string[], scrapeInterval: string): string {
  const config = {
    global: { scrape_interval: scrapeInterval, scrape_timeout: scrapeInterval, evaluation_interval: scrapeInterval },
    scrape_configs: [{ job_name: 'test', static_configs: [{ targets: scrapeTargets }] }],
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

/** The process ended before it was ready. */
class ExitedEarly extends Error {}

/** Poll /-/ready until it answers 200; throws (with the log's tail) when the process exits or the deadline passes. */
async function waitReady(url: string, child: ChildProcess, logFile: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const tail = (): string => readFileSync(logFile, 'utf8').split('\n').slice(-15).join('\n');
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new ExitedEarly(`prometheus exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${tail()}`);
    try {
      const res = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1_000) });
      await res.body?.cancel();
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`prometheus not ready at ${url} within ${timeoutMs}ms:\n${tail()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function startOnce(dir: string, configFile: string, readyTimeoutMs: number): Promise<{ url: string; child: ChildProcess }> {
  const logFile = join(dir, 'prometheus.log');
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const log = openSync(logFile, 'w');
  const child = spawn(
    PROMETHEUS_BIN as string,
    [`--config.file=${configFile}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    { cwd: dir, stdio: ['ignore', log, log] },
  );
  closeSync(log);
  children.add(child);
  try {
    await waitReady(url, child, logFile, readyTimeoutMs);
    return { url, child };
  } catch (e) {
    await stopChild(child, 5_000);
    children.delete(child);
    throw e;
  }
}

/**
 * Start Prometheus scraping `scrapeTargets` (host:port) every `scrapeInterval`. Resolves when /-/ready
 * answers 200; the caller may stop it early, and it is stopped after the file's tests regardless.
 */
export async function startPrometheus(o: { scrapeTargets: string[]; scrapeInterval?: string; readyTimeoutMs?: number }): Promise<TestPrometheus> {
  if (!PROMETHEUS_BIN) throw new Error('prometheus is not installed (apt-get install prometheus)');
  const dir = mkdtempSync(join(tmpdir(), 'recoverctl-prometheus-'));
  const configFile = join(dir, 'prometheus.yml');
  writeFileSync(configFile, configFor(o.scrapeTargets, o.scrapeInterval ?? '1s'));
  let started: { url: string; child: ChildProcess };
  for (let attempt = 1; ; attempt++) {
    try {
      started = await startOnce(dir, configFile, o.readyTimeoutMs ?? 30_000);
      break;
    } catch (e) {
      // Exited before ready: most likely another process took the port in between, so try another.
      if (!(e instanceof ExitedEarly) || attempt === 3) {
        rmSync(dir, { recursive: true, force: true });
        throw e;
      }
    }
  }
  const { url, child } = started;
  let stopping: Promise<void> | undefined;
  const instance: TestPrometheus = {
    url,
    pid: child.pid ?? -1,
    dir,
    stop: () =>
      (stopping ??= (async () => {
        await stopChild(child, 5_000);
        children.delete(child);
        live.delete(instance);
        rmSync(dir, { recursive: true, force: true });
      })()),
  };
  live.add(instance);
  return instance;
}
