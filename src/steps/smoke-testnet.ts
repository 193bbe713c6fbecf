import { join, resolve as resolvePath } from 'node:path';
import { z } from 'zod';
import { defineStep, errorMessage, type StepCheck, type StepContext, type StepResult } from './types.js';
import { hotfixDeployWith, readArtifact, versionFromName } from './hotfix.js';
import type { ControlClient, ScratchEngine } from './effects.js';

const SUITES = ['order-matching', 'margin-checks', 'collateral-reconciliation', 'queue-depth-burst'] as const;
type Suite = (typeof SUITES)[number];

export const smokeTestnetWith = z.strictObject({
  component: hotfixDeployWith.shape.component,
  artifact: hotfixDeployWith.shape.artifact,
  sha256: hotfixDeployWith.shape.sha256,
  version: hotfixDeployWith.shape.version,
  suites: z
    .array(z.enum(SUITES))
    .min(1)
    .default([...SUITES]),
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

type SmokeWith = z.output<typeof smokeTestnetWith>;
type Client = ControlClient;
type OrderBody = import('../engine-client/client.js').OrderBody;

/** What a suite works with: the testnet's client, timed order entry, and `check` to record a case. */
interface SuiteContext {
  client: Client;
  w: SmokeWith;
  version: string;
  /** Three funded traders. */
  traders: [string, string, string];
  order: (body: OrderBody) => ReturnType<Client['placeOrder']>;
  timed: <T>(f: () => Promise<T>) => Promise<T>;
  /** One case: `true` passes, a string is why it failed (a throw is caught as a failure too). */
  check: (name: string, f: () => Promise<string | true>) => Promise<void>;
  /** The deepest margin queue seen during a burst. */
  burst: { depth: number };
}

/** Each suite of cases; a suite name the schema allows but this map lacks does not compile. */
const SUITE_RUNS: Record<Suite, (s: SuiteContext) => Promise<void>> = {
  'order-matching': async ({ client, order, timed, check, traders: [a, b, c] }) => {
    await check('crossing orders fill at the maker price', async () => {
      await order({ account: a, symbol: 'BTCUSDT', side: 'sell', type: 'limit', price: '60010', qty: '0.01' });
      const r = await order({ account: b, symbol: 'BTCUSDT', side: 'buy', type: 'limit', price: '60050', qty: '0.01' });
      return r.status === 'filled' && r.avgPrice === '60010' ? true : `got ${r.status} at ${String(r.avgPrice)}`;
    });
    await check('price-time priority: the older order at a price fills first', async () => {
      const first = await order({ account: a, symbol: 'ETHUSDT', side: 'sell', type: 'limit', price: '3001', qty: '0.1' });
      const second = await order({ account: c, symbol: 'ETHUSDT', side: 'sell', type: 'limit', price: '3001', qty: '0.1' });
      await order({ account: b, symbol: 'ETHUSDT', side: 'buy', type: 'limit', price: '3001', qty: '0.1' });
      const s1 = await client.request<{ status: string }>('GET', `/orders/${first.id as string}`);
      const s2 = await client.request<{ status: string }>('GET', `/orders/${second.id as string}`);
      return s1.status === 'filled' && s2.status === 'open' ? true : `first ${s1.status}, second ${s2.status}`;
    });
    await check('an IOC remainder is cancelled, a post-only that would take is rejected', async () => {
      const ioc = await order({ account: b, symbol: 'ETHUSDT', side: 'buy', type: 'limit', tif: 'IOC', price: '3001', qty: '0.5' });
      await order({ account: a, symbol: 'BTCUSDT', side: 'sell', type: 'limit', price: '60200', qty: '0.01' });
      const po = await order({ account: b, symbol: 'BTCUSDT', side: 'buy', type: 'limit', price: '60250', qty: '0.01', postOnly: true });
      return ioc.status === 'canceled' && ioc.filled === '0.1' && po.reason === 'POST_ONLY_WOULD_TAKE'
        ? true
        : `ioc ${ioc.status}/${ioc.filled}, post-only ${po.status} ${String(po.reason)}`;
    });
    await check('a resting order can be cancelled', async () => {
      const r = await order({ account: c, symbol: 'BTCUSDC', side: 'buy', type: 'limit', price: '59000', qty: '0.01' });
      const x = await timed(() => client.cancel(r.id as string));
      return x.status === 'canceled' ? true : `cancel gave ${x.status}`;
    });
  },
  'margin-checks': async ({ order, check, traders: [, , c] }) => {
    await check('an order that breaches initial margin is rejected', async () => {
      const r = await order({ account: 'smoke-poor', symbol: 'BTCUSDT', side: 'buy', type: 'limit', price: '60000', qty: '1' });
      return r.reason === 'INSUFFICIENT_MARGIN' ? true : `got ${r.status} ${String(r.reason)}`;
    });
    await check('an order within margin is accepted', async () => {
      const r = await order({ account: 'smoke-poor', symbol: 'ETHUSDT', side: 'buy', type: 'limit', price: '2990', qty: '0.01' });
      return r.status === 'open' ? true : `got ${r.status} ${String(r.reason)}`;
    });
    await check('a reduce-only order that would increase the position is rejected', async () => {
      const r = await order({ account: c, symbol: 'BTCUSDT', side: 'buy', type: 'limit', price: '59000', qty: '0.01', reduceOnly: true });
      return r.reason === 'REDUCE_ONLY_WOULD_INCREASE' ? true : `got ${r.status} ${String(r.reason)}`;
    });
  },
  'collateral-reconciliation': async ({ client, check, w }) => {
    await check('collateral + fees + insurance balance to the unit, per asset', async () => {
      const h = await client.health();
      return Object.values(h.ledger).every((v) => v === '0') ? true : `ledger ${JSON.stringify(h.ledger)}`;
    });
    await check('every deposit is in a balance', async () => {
      const ext = (await client.account('@external')) as { balances: Record<string, string> };
      const expected = -(w.accounts * 1_000_000 + 100);
      return Number(ext.balances.USDT) === expected ? true : `@external USDT ${ext.balances.USDT}, expected ${expected}`;
    });
  },
  'queue-depth-burst': async ({ client, check, w, version, burst }) => {
    await check(`a margin burst of twice the queue limit keeps the engine open on ${version}`, async () => {
      const r = await client.fault('margin-burst');
      burst.depth = Math.max(burst.depth, Number(r.queueDepth ?? 0));
      const h = await client.health();
      return h.phase === 'open' ? true : `engine ${h.phase}: ${h.reason ?? ''}`;
    });
    if (w.accept.maxQueueDepth !== undefined) {
      const limit = w.accept.maxQueueDepth;
      await check(`queue depth during the burst <= ${limit}`, () => Promise.resolve(burst.depth <= limit ? true : `depth ${burst.depth}`));
    }
  },
};

/** What the suites left: their cases, the latencies of order entry, the burst's depth, the suites that ran. */
interface SuitesRun {
  checks: StepCheck[];
  latencies: number[];
  burst: { depth: number };
  suitesRun: Set<Suite>;
  setupError: string | undefined;
}

/** A testnet engine with the artifact active and funded traders; every suite run against it; always stopped. */
async function runOnTestnet(w: SmokeWith, version: string, bytes: Buffer, ctx: StepContext): Promise<SuitesRun> {
  const { mkdtemp, mkdir, writeFile, rm } = await import('node:fs/promises');
  const scratch = await mkdtemp(join(ctx.scratchDir, 'recoverctl-testnet-'));
  const dataDir = join(scratch, 'engine');
  const out: SuitesRun = { checks: [], latencies: [], burst: { depth: 0 }, suitesRun: new Set(), setupError: undefined };
  let testnet: ScratchEngine | undefined;
  try {
    testnet = await ctx.engines.scratch(dataDir, { testnet: true, seed: w.seed, feedInterval: '0ms' });
    const { client } = testnet;
    await mkdir(join(dataDir, 'modules', w.component), { recursive: true });
    await writeFile(join(dataDir, 'modules', w.component, `${version}.mjs`), bytes);
    await client.activate(w.component, version);
    ctx.progress(`testnet ${client.url} on ${w.component} ${version}`);
    const accounts = Array.from({ length: w.accounts }, (_, i) => `smoke-${String(i + 1).padStart(4, '0')}`);
    for (const a of accounts) await client.deposit(a, 'USDT', '1000000');
    await client.deposit('smoke-poor', 'USDT', '100');
    await client.setPhase('open');
    const timed = async <T>(f: () => Promise<T>): Promise<T> => {
      const t = performance.now();
      try {
        return await f();
      } finally {
        out.latencies.push(performance.now() - t);
      }
    };
    for (const suite of w.suites) {
      ctx.progress(`suite ${suite}`);
      out.suitesRun.add(suite);
      const check = async (name: string, f: () => Promise<string | true>): Promise<void> => {
        const t = performance.now();
        let result: string | true;
        try {
          result = await f();
        } catch (e) {
          result = errorMessage(e);
        }
        out.checks.push({
          name: `${suite}: ${name}`,
          ok: result === true,
          durationMs: Math.round(performance.now() - t),
          ...(result === true ? {} : { message: result }),
        });
      };
      const traders = accounts as [string, string, string];
      await SUITE_RUNS[suite]({ client, w, version, traders, order: (b) => timed(() => client.placeOrder(b)), timed, check, burst: out.burst });
    }
  } catch (e) {
    if (ctx.signal.aborted) throw e;
    out.setupError = errorMessage(e);
    out.checks.push({ name: 'testnet', ok: false, message: out.setupError });
  } finally {
    await testnet?.stop();
    await rm(scratch, { recursive: true, force: true });
  }
  return out;
}

/** Accept the module or not, by `accept`; never on tests that did not run, whatever `accept.failures` allows. */
function judge(w: SmokeWith, version: string, run: SuitesRun): StepResult {
  const { checks } = run;
  const notRun = w.suites.filter((x) => !run.suitesRun.has(x));
  if (run.setupError !== undefined || notRun.length > 0) {
    return { ok: false, error: `smoke.testnet could not test ${w.component} ${version}: ${run.setupError ?? `suites not run: ${notRun.join(', ')}`}`, checks };
  }
  const sorted = [...run.latencies].sort((x, y) => x - y);
  const p99 = sorted.length ? Math.round((sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.99) - 1)] as number) * 100) / 100 : 0;
  const failed = checks.filter((c) => !c.ok).length;
  if (w.accept.p99LatencyMs !== undefined)
    checks.push({ name: `order entry p99 <= ${w.accept.p99LatencyMs}ms`, ok: p99 <= w.accept.p99LatencyMs, message: `p99 ${p99}ms` });
  const latencyFailed = w.accept.p99LatencyMs !== undefined && p99 > w.accept.p99LatencyMs;
  const outputs = { passed: checks.filter((c) => c.ok).length, failed, p99LatencyMs: p99, maxQueueDepth: run.burst.depth, version };
  if (failed > w.accept.failures || latencyFailed) {
    const bad = checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.message ?? ''}`);
    return { ok: false, error: `smoke tests not accepted: ${failed} failed${latencyFailed ? `, p99 ${p99}ms` : ''} (${bad.join('; ')})`, outputs, checks };
  }
  return { ok: true, outputs, checks };
}

export const smokeTestnetStep = defineStep({
  uses: 'smoke.testnet',
  with: smokeTestnetWith,
  needs: (w, ctx) => [{ need: 'file', field: 'artifact', path: resolvePath(ctx.playbookDir, w.artifact) }],
  describe: (w) =>
    `start a testnet engine with ${w.component} ${w.version ?? versionFromName(w.component, w.artifact) ?? '?'} (${w.artifact}), run ${w.suites.join(', ')}; accept ${Object.entries(
      w.accept,
    )
      .map(([k, v]) => `${k} ${String(v)}`)
      .join(', ')}`,
  async run(w, ctx): Promise<StepResult> {
    const version = w.version ?? versionFromName(w.component, w.artifact);
    if (!version) return { ok: false, error: `cannot tell the version of ${w.artifact}` };
    const art = await readArtifact(ctx, w.artifact);
    if ('error' in art) return { ok: false, error: art.error };
    if (art.digest !== w.sha256) return { ok: false, error: `sha256 mismatch for ${art.path}: expected ${w.sha256}, got ${art.digest}` };
    return judge(w, version, await runOnTestnet(w, version, art.bytes, ctx));
  },
});
