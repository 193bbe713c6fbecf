import { resolve as resolvePath } from 'node:path';
import { z } from 'zod';
import { defineStep, errorMessage, type StepCheck, type StepResult } from './types.js';
import { hotfixDeployWith, readArtifact, versionFromName } from './hotfix.js';

const SUITES = ['order-matching', 'margin-checks', 'collateral-reconciliation', 'queue-depth-burst'] as const;
type Suite = (typeof SUITES)[number];

export const smokeTestnetWith = z.strictObject({
  component: hotfixDeployWith.shape.component,
  artifact: hotfixDeployWith.shape.artifact,
  sha256: hotfixDeployWith.shape.sha256,
  version: hotfixDeployWith.shape.version,
  suites: z.array(z.enum(SUITES)).min(1).default([...SUITES]),
  accounts: z.number().int().min(2).max(5_000).default(50).describe('seeded testnet accounts'),
  seed: z.number().int().min(0).default(7),
  accept: z
    .strictObject({
      maxQueueDepth: z.number().int().min(0).optional().describe('deepest margin queue allowed during the burst'),
      p99LatencyMs: z.number().positive().optional().describe('order entry p99 over all suites'),
      failures: z.number().int().min(0).default(0).describe('failed checks allowed'),
    })
    .default({ failures: 0 }),
});

export const smokeTestnetStep = defineStep({
  uses: 'smoke.testnet',
  with: smokeTestnetWith,
  needs: (w, ctx) => [{ need: 'file', field: 'artifact', path: resolvePath(ctx.playbookDir, w.artifact) }],
  describe: (w) =>
    `start a testnet engine with ${w.component} ${w.version ?? versionFromName(w.component, w.artifact) ?? '?'} (${w.artifact}), run ${w.suites.join(', ')}; accept ${Object.entries(w.accept).map(([k, v]) => `${k} ${String(v)}`).join(', ')}`,
  async run(w, ctx): Promise<StepResult> {
    const ver = w.version ?? versionFromName(w.component, w.artifact);
    if (!ver) return { ok: false, error: `cannot tell the version of ${w.artifact}` };
    const art = await readArtifact(ctx, w.artifact);
    if ('error' in art) return { ok: false, error: art.error };
    if (art.digest !== w.sha256) return { ok: false, error: `sha256 mismatch for ${art.path}: expected ${w.sha256}, got ${art.digest}` };
    const { mkdtemp, mkdir, writeFile, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { startEngine, stopEngine } = await import('../engine-client/supervisor.js');
    const scratch = await mkdtemp(join(tmpdir(), 'recoverctl-testnet-'));
    const dataDir = join(scratch, 'engine');
    const checks: StepCheck[] = [];
    const latencies: number[] = [];
    let burstDepth = 0;
    let setupError: string | undefined;
    const suitesRun = new Set<Suite>();
    // If this process is ended abruptly, the testnet must not outlive it.
    let testnetPid: number | undefined;
    const killTestnet = (): void => {
      if (testnetPid === undefined) return;
      try {
        process.kill(testnetPid, 'SIGTERM');
      } catch {
        // already gone
      }
    };
    process.on('exit', killTestnet);
    try {
      const { client, info } = await startEngine(dataDir, { testnet: true, seed: w.seed, feedInterval: '0ms', exitWithMe: true });
      testnetPid = info.pid;
      await mkdir(join(dataDir, 'modules', w.component), { recursive: true });
      await writeFile(join(dataDir, 'modules', w.component, `${ver}.mjs`), art.bytes);
      await client.activate(w.component, ver);
      ctx.progress(`testnet ${client.url} on ${w.component} ${ver}`);
      const accounts = Array.from({ length: w.accounts }, (_, i) => `smoke-${String(i + 1).padStart(4, '0')}`);
      for (const a of accounts) await client.deposit(a, 'USDT', '1000000');
      await client.deposit('smoke-poor', 'USDT', '100');
      await client.setPhase('open');
      const timed = async <T>(f: () => Promise<T>): Promise<T> => {
        const t = performance.now();
        try {
          return await f();
        } finally {
          latencies.push(performance.now() - t);
        }
      };
      const order = (b: import('../engine-client/client.js').OrderBody) => timed(() => client.placeOrder(b));
      const check = async (suite: Suite, name: string, f: () => Promise<string | true>): Promise<void> => {
        const t = performance.now();
        let result: string | true;
        try {
          result = await f();
        } catch (e) {
          result = errorMessage(e);
        }
        checks.push({ name: `${suite}: ${name}`, ok: result === true, durationMs: Math.round(performance.now() - t), ...(result === true ? {} : { message: result }) });
      };
      const [a, b, c] = accounts as [string, string, string];
      for (const suite of w.suites) {
        ctx.progress(`suite ${suite}`);
        suitesRun.add(suite);
        if (suite === 'order-matching') {
          await check(suite, 'crossing orders fill at the maker price', async () => {
            await order({ account: a, symbol: 'BTCUSDT', side: 'sell', type: 'limit', price: '60010', qty: '0.01' });
            const r = await order({ account: b, symbol: 'BTCUSDT', side: 'buy', type: 'limit', price: '60050', qty: '0.01' });
            return r.status === 'filled' && r.avgPrice === '60010' ? true : `got ${r.status} at ${String(r.avgPrice)}`;
          });
          await check(suite, 'price-time priority: the older order at a price fills first', async () => {
            const first = await order({ account: a, symbol: 'ETHUSDT', side: 'sell', type: 'limit', price: '3001', qty: '0.1' });
            const second = await order({ account: c, symbol: 'ETHUSDT', side: 'sell', type: 'limit', price: '3001', qty: '0.1' });
            await order({ account: b, symbol: 'ETHUSDT', side: 'buy', type: 'limit', price: '3001', qty: '0.1' });
            const s1 = await client.request<{ status: string }>('GET', `/orders/${first.id as string}`);
            const s2 = await client.request<{ status: string }>('GET', `/orders/${second.id as string}`);
            return s1.status === 'filled' && s2.status === 'open' ? true : `first ${s1.status}, second ${s2.status}`;
          });
          await check(suite, 'an IOC remainder is cancelled, a post-only that would take is rejected', async () => {
            const ioc = await order({ account: b, symbol: 'ETHUSDT', side: 'buy', type: 'limit', tif: 'IOC', price: '3001', qty: '0.5' });
            await order({ account: a, symbol: 'BTCUSDT', side: 'sell', type: 'limit', price: '60200', qty: '0.01' });
            const po = await order({ account: b, symbol: 'BTCUSDT', side: 'buy', type: 'limit', price: '60250', qty: '0.01', postOnly: true });
            return ioc.status === 'canceled' && ioc.filled === '0.1' && po.reason === 'POST_ONLY_WOULD_TAKE' ? true : `ioc ${ioc.status}/${ioc.filled}, post-only ${po.status} ${String(po.reason)}`;
          });
          await check(suite, 'a resting order can be cancelled', async () => {
            const r = await order({ account: c, symbol: 'BTCUSDC', side: 'buy', type: 'limit', price: '59000', qty: '0.01' });
            const x = await timed(() => client.cancel(r.id as string));
            return x.status === 'canceled' ? true : `cancel gave ${x.status}`;
          });
        } else if (suite === 'margin-checks') {
          await check(suite, 'an order that breaches initial margin is rejected', async () => {
            const r = await order({ account: 'smoke-poor', symbol: 'BTCUSDT', side: 'buy', type: 'limit', price: '60000', qty: '1' });
            return r.reason === 'INSUFFICIENT_MARGIN' ? true : `got ${r.status} ${String(r.reason)}`;
          });
          await check(suite, 'an order within margin is accepted', async () => {
            const r = await order({ account: 'smoke-poor', symbol: 'ETHUSDT', side: 'buy', type: 'limit', price: '2990', qty: '0.01' });
            return r.status === 'open' ? true : `got ${r.status} ${String(r.reason)}`;
          });
          await check(suite, 'a reduce-only order that would increase the position is rejected', async () => {
            const r = await order({ account: c, symbol: 'BTCUSDT', side: 'buy', type: 'limit', price: '59000', qty: '0.01', reduceOnly: true });
            return r.reason === 'REDUCE_ONLY_WOULD_INCREASE' ? true : `got ${r.status} ${String(r.reason)}`;
          });
        } else if (suite === 'collateral-reconciliation') {
          await check(suite, 'collateral + fees + insurance balance to the unit, per asset', async () => {
            const h = await client.health();
            return Object.values(h.ledger).every((v) => v === '0') ? true : `ledger ${JSON.stringify(h.ledger)}`;
          });
          await check(suite, 'every deposit is in a balance', async () => {
            const ext = (await client.account('@external')) as { balances: Record<string, string> };
            const expected = -(w.accounts * 1_000_000 + 100);
            return Number(ext.balances.USDT) === expected ? true : `@external USDT ${ext.balances.USDT}, expected ${expected}`;
          });
        } else {
          await check(suite, `a margin burst of twice the queue limit keeps the engine open on ${ver}`, async () => {
            const r = await client.fault('margin-burst');
            burstDepth = Math.max(burstDepth, Number(r.queueDepth ?? 0));
            const h = await client.health();
            return h.phase === 'open' ? true : `engine ${h.phase}: ${h.reason ?? ''}`;
          });
          if (w.accept.maxQueueDepth !== undefined) {
            const limit = w.accept.maxQueueDepth;
            await check(suite, `queue depth during the burst <= ${limit}`, async () => (burstDepth <= limit ? true : `depth ${burstDepth}`));
          }
        }
      }
    } catch (e) {
      if (ctx.signal.aborted) throw e;
      setupError = errorMessage(e);
      checks.push({ name: 'testnet', ok: false, message: setupError });
    } finally {
      await stopEngine(dataDir).catch(() => undefined);
      process.off('exit', killTestnet);
      await rm(scratch, { recursive: true, force: true });
    }
    // A hotfix is never accepted on tests that did not run, whatever `accept.failures` allows.
    const notRun = w.suites.filter((x) => !suitesRun.has(x));
    if (setupError !== undefined || notRun.length > 0) {
      return { ok: false, error: `smoke.testnet could not test ${w.component} ${ver}: ${setupError ?? `suites not run: ${notRun.join(', ')}`}`, checks };
    }
    const sorted = [...latencies].sort((x, y) => x - y);
    const p99 = sorted.length ? Math.round((sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.99) - 1)] as number) * 100) / 100 : 0;
    const failed = checks.filter((c) => !c.ok).length;
    if (w.accept.p99LatencyMs !== undefined) checks.push({ name: `order entry p99 <= ${w.accept.p99LatencyMs}ms`, ok: p99 <= w.accept.p99LatencyMs, message: `p99 ${p99}ms` });
    const latencyFailed = w.accept.p99LatencyMs !== undefined && p99 > w.accept.p99LatencyMs;
    const outputs = { passed: checks.filter((c) => c.ok).length, failed, p99LatencyMs: p99, maxQueueDepth: burstDepth, version: ver };
    if (failed > w.accept.failures || latencyFailed) {
      const bad = checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.message ?? ''}`);
      return { ok: false, error: `smoke tests not accepted: ${failed} failed${latencyFailed ? `, p99 ${p99}ms` : ''} (${bad.join('; ')})`, outputs, checks };
    }
    return { ok: true, outputs, checks };
  },
});
