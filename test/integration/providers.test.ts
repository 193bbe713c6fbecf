/**
 * Traffic providers against the real gateways: HAProxy 2.x through its stats socket, open-source nginx
 * through its upstream file, `nginx -t` and reload. Each test starts its own gateway and origins on
 * ephemeral 127.0.0.1 ports; they are stopped after it however it ends.
 */
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { nodeExec, nodeSocket } from '../../src/cli/effects.js';
import { HaproxyProvider, parseServersState } from '../../src/steps/providers/haproxy.js';
import {
  ProviderError,
  providerFor,
  trafficProvider,
  type HaproxyProviderConfig,
  type ProviderDeps,
  type TrafficProvider,
} from '../../src/steps/providers/index.js';
import { renderUpstream } from '../../src/steps/providers/nginx.js';
import { waitFor } from '../support/cli.js';
import { onPath, startEngineAndSorry, startHaproxy, startOrigin, type HaproxyOptions } from '../support/haproxy.js';
import { startNginx } from '../support/nginx.js';

const haveHaproxy = onPath('haproxy');
const haveNginx = onPath('nginx');
if (!haveHaproxy) console.warn('providers.test.ts: skipping the HAProxy tests: no `haproxy` on PATH (apt-get install haproxy)');
if (!haveNginx) console.warn('providers.test.ts: skipping the nginx tests: no `nginx` on PATH (apt-get install nginx-light)');

function deps(playbookDir = '/'): ProviderDeps {
  return { exec: nodeExec, socket: nodeSocket, signal: new AbortController().signal, playbookDir };
}

/** `n` requests through the gateway, one connection each: the bodies and statuses they got. */
async function through(url: string, n = 20): Promise<{ bodies: Set<string>; statuses: Set<number>; retryAfter: Set<string | null> }> {
  const bodies = new Set<string>();
  const statuses = new Set<number>();
  const retryAfter = new Set<string | null>();
  for (let i = 0; i < n; i++) {
    const res = await fetch(url, { headers: { connection: 'close' }, signal: AbortSignal.timeout(5_000) });
    bodies.add(await res.text());
    statuses.add(res.status);
    retryAfter.add(res.headers.get('retry-after'));
  }
  return { bodies, statuses, retryAfter };
}

async function failure(p: Promise<unknown>): Promise<ProviderError> {
  const e = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(e).toBeInstanceOf(ProviderError);
  return e as ProviderError;
}

describe.skipIf(!haveHaproxy)(`haproxy provider against a real HAProxy${haveHaproxy ? '' : ' (skipped: no haproxy on PATH)'}`, () => {
  async function gateway(o: Partial<HaproxyOptions> = {}) {
    const { engine, sorry } = await startEngineAndSorry();
    const hx = await startHaproxy({ servers: { engine: engine.address, sorry: sorry.address }, ...o });
    const provider = (over: Record<string, unknown> = {}): TrafficProvider =>
      providerFor(trafficProvider.parse({ type: 'haproxy', socket: hx.socket, backend: 'be_orders', canary: 'engine', remainder: 'sorry', ...over }), deps());
    const state = async (): Promise<[number, number]> => {
      const rows = parseServersState(await nodeSocket(hx.socket, 'show servers state be_orders', { signal: AbortSignal.timeout(5_000), timeoutMs: 2_000 }));
      return [rows.find((r) => r.server === 'engine')?.weight ?? -1, rows.find((r) => r.server === 'sorry')?.weight ?? -1];
    };
    return { hx, engine, sorry, provider, state };
  }

  it('shifts 10 → 50 → 100: the state reads 100/0 and every request reaches the canary; abort gives 0/100 and the sorry 503', async () => {
    const { hx, provider, state } = await gateway();
    const p = provider();
    expect(await p.set(10, 1)).toEqual({ weight: 10, remainderWeight: 90 });
    expect(await p.set(50, 2)).toEqual({ weight: 50, remainderWeight: 50 });
    expect(await p.set(100, 3)).toEqual({ weight: 100, remainderWeight: 0 });
    expect(await state()).toEqual([100, 0]);
    expect(await through(hx.frontendUrl)).toEqual({ bodies: new Set(['engine']), statuses: new Set([200]), retryAfter: new Set([null]) });
    expect(await p.abort()).toEqual({ weight: 0, remainderWeight: 100 });
    expect(await state()).toEqual([0, 100]);
    expect(await through(hx.frontendUrl)).toEqual({ bodies: new Set(['sorry']), statuses: new Set([503]), retryAfter: new Set(['5']) });
  });

  it('retarget points the canary server at another origin (a promoted standby): read back, and every request reaches it', async () => {
    const { hx, engine } = await gateway();
    const standby = await startOrigin({ status: 200, body: 'standby' });
    const hp = new HaproxyProvider(
      trafficProvider.parse({ type: 'haproxy', socket: hx.socket, backend: 'be_orders', canary: 'engine', remainder: 'sorry' }) as HaproxyProviderConfig,
      deps(),
    );
    await hp.set(100, 1);
    const [host, port] = standby.address.split(':') as [string, string];
    expect(await hp.retarget(host, Number(port))).toEqual({ from: engine.address, to: standby.address });
    expect(await through(hx.frontendUrl)).toEqual({ bodies: new Set(['standby']), statuses: new Set([200]), retryAfter: new Set([null]) });
    // Again: nothing to change, still verified.
    expect((await hp.retarget(host, Number(port))).to).toBe(standby.address);
    const e = await failure(
      new HaproxyProvider({ ...(hp as unknown as { config: HaproxyProviderConfig }).config, canary: 'nope' }, deps()).retarget(host, Number(port)),
    );
    expect(e.message).toBe(`haproxy be_orders/nope: no such server nope in backend be_orders (${hx.socket})`);
  });

  it('current() of a fresh provider (as after a crash) reads the weights in place, over the TCP socket too', async () => {
    const { hx, provider } = await gateway();
    await provider().set(50, 2);
    expect(await provider().current()).toEqual({ weight: 50, remainderWeight: 50 });
    expect(await provider({ socket: hx.tcp }).current()).toEqual({ weight: 50, remainderWeight: 50 });
    expect(await provider({ socket: hx.tcp }).set(25, 1)).toEqual({ weight: 25, remainderWeight: 75 });
  });

  it('refuses a socket at user level with the admin-level message, and changes nothing', async () => {
    const { hx, provider, state } = await gateway({ admin: false });
    const e = await failure(provider().set(50, 2));
    expect(e.failure).toBe('forbidden');
    expect(e.message).toBe(
      `haproxy be_orders/engine: Permission denied: the socket ${hx.socket} is not at admin level (configure \`stats socket ${hx.dir}/admin.sock level admin\`)`,
    );
    expect(await state()).toEqual([100, 100]);
  });

  it('names an unknown backend or server', async () => {
    const { hx, provider } = await gateway();
    expect((await failure(provider({ backend: 'be_nope' }).set(10, 1))).message).toBe(`haproxy be_nope/engine: no such backend be_nope (${hx.socket})`);
    expect((await failure(provider({ canary: 'engine2' }).set(10, 1))).message).toBe(
      `haproxy be_orders/engine2: no such server engine2 in backend be_orders (${hx.socket})`,
    );
    expect((await failure(provider({ backend: 'be_nope' }).current())).failure).toBe('not-found');
  });

  it('says when the socket cannot be reached', async () => {
    const { hx, provider } = await gateway();
    const e = await failure(provider({ socket: `unix://${hx.dir}/missing.sock` }).set(10, 1));
    expect(e).toMatchObject({ failure: 'unreachable', target: 'be_orders/engine' });
    expect(e.message).toMatch(/^haproxy be_orders\/engine: cannot reach the stats socket: socket unix:\/\/.*\/missing\.sock: connect ENOENT /);
  });

  it('a static-rr backend refuses 50% and says why; 0 and 100 still go through', async () => {
    const { provider, state } = await gateway({ balance: 'static-rr' });
    const e = await failure(provider().set(50, 2));
    expect(e).toMatchObject({ failure: 'rejected', target: 'be_orders/engine' });
    expect(e.message).toContain('uses a static algorithm (static-rr, first), which accepts only weights 0 and 100% of the initial weight, not 50');
    expect(await provider().set(100, 3)).toEqual({ weight: 100, remainderWeight: 0 });
    expect(await provider().abort()).toEqual({ weight: 0, remainderWeight: 100 });
    expect(await state()).toEqual([0, 100]);
  });
});

describe.skipIf(!haveNginx)(`nginx provider against a real nginx${haveNginx ? '' : ' (skipped: no nginx on PATH)'}`, () => {
  async function gateway() {
    const { engine, sorry } = await startEngineAndSorry();
    const original = `upstream orders {\n    server ${sorry.address};\n}\n`;
    const ng = await startNginx({ upstreamText: original });
    const config = (over: Record<string, unknown> = {}) =>
      trafficProvider.parse({
        type: 'nginx',
        upstreamFile: 'conf.d/orders.conf',
        upstream: 'orders',
        canary: engine.address,
        remainder: sorry.address,
        test: ng.test,
        reload: ng.reload,
        ...over,
      });
    const provider = (over: Record<string, unknown> = {}): TrafficProvider => providerFor(config(over), deps(ng.dir));
    /** Reload is asynchronous (old workers finish first): wait until every request of a round gets `body`. */
    const servesOnly = (body: string) =>
      waitFor(
        async () => {
          const r = await through(ng.frontendUrl, 10);
          return r.bodies.size === 1 && r.bodies.has(body);
        },
        20_000,
        `nginx to serve only ${body}`,
      );
    return { ng, engine, sorry, original, provider, servesOnly };
  }

  it('renders, passes the real nginx -t, reloads: 10 → 50 → 100 reaches the canary only; abort restores the original file', async () => {
    const { ng, engine, sorry, original, provider, servesOnly } = await gateway();
    await servesOnly('sorry');
    const p = provider();
    expect(await p.set(10, 1)).toEqual({ weight: 10, remainderWeight: 90 });
    expect(await p.set(50, 2)).toEqual({ weight: 50, remainderWeight: 50 });
    expect(await p.set(100, 3)).toEqual({ weight: 100, remainderWeight: 0 });
    expect(readFileSync(ng.upstreamFile, 'utf8')).toBe(renderUpstream({ upstream: 'orders', canary: engine.address, remainder: sorry.address }, 100));
    expect(readFileSync(`${ng.upstreamFile}.recoverctl-previous`, 'utf8')).toBe(original);
    await servesOnly('engine');
    expect(await provider().current()).toEqual({ weight: 100, remainderWeight: 0 });
    expect(await p.abort()).toEqual({ weight: 0, remainderWeight: 1 });
    expect(readFileSync(ng.upstreamFile, 'utf8')).toBe(original);
    expect(existsSync(`${ng.upstreamFile}.recoverctl-previous`)).toBe(false);
    await servesOnly('sorry');
    const r = await through(ng.frontendUrl, 3);
    expect([...r.statuses, ...r.retryAfter]).toEqual([503, '5']);
  });

  it('a broken canary address fails the real nginx -t: the previous file is put back and nginx keeps serving', async () => {
    const { ng, provider } = await gateway();
    await provider().set(50, 2);
    const before = readFileSync(ng.upstreamFile, 'utf8');
    const e = await failure(provider({ canary: '127.0.0.1:99999' }).set(60, 3));
    expect(e.failure).toBe('rejected');
    expect(e.message).toMatch(
      /^nginx upstream orders in .*orders\.conf: `nginx .* -t` exited with code 1: \[emerg\] invalid port in upstream "127\.0\.0\.1:99999" in .*orders\.conf:3; .*; the file was put back as it was$/,
    );
    expect(readFileSync(ng.upstreamFile, 'utf8')).toBe(before);
    expect(await provider().current()).toEqual({ weight: 50, remainderWeight: 50 });
    // Still the 50/50 of the last good set: both origins answer.
    await waitFor(async () => (await through(ng.frontendUrl, 10)).bodies.size === 2, 20_000, 'nginx to serve both origins');
  });
});
