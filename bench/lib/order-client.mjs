// An order client for bench/recovery-paths: from the engine's own halt (EXCESS_QUEUE_DEPTH) until
// stopped, one resting post-only bid every interval to whichever engine of a rehearsal's scratch folder
// is the writable primary, counting how each was answered.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const ACCOUNT = 'bench-client';
// A bid this far under the mark rests and never trades, yet stays inside the engine's 20% price band
// (PRICE_BAND_BPS): a fixed 30000.0 against a mark near 60000 is refused as INVALID.
const BELOW_MARK = 0.85;
const bid = (price) => ({ account: ACCOUNT, symbol: 'BTCUSDT', side: 'buy', type: 'limit', price, qty: '0.001', postOnly: true });
const POLL_MS = 50;

/** The running engines of the scratch folder: engine.json and the token are re-read, a restart changes both. */
function enginesIn(scratch) {
  let names = [];
  try {
    names = readdirSync(scratch);
  } catch {
    return [];
  }
  const found = [];
  for (const name of names) {
    try {
      const { url } = JSON.parse(readFileSync(join(scratch, name, 'engine.json'), 'utf8'));
      found.push({ name, url, token: readFileSync(join(scratch, name, 'control.token'), 'utf8').trim() });
    } catch {
      // Not an engine dir, or one between stop and start.
    }
  }
  return found;
}

async function call(engine, method, path, body, timeoutMs) {
  const res = await fetch(`${engine.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${engine.token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  let json = {};
  try {
    json = JSON.parse(text);
  } catch {
    json = { error: text.slice(0, 80) };
  }
  return { status: res.status, body: json };
}

/**
 * Start the client on a scratch folder (a promise of it, or of null when the rehearsal never made one). Returns
 * `stop()`, which ends the sending and resolves to the counts once every order in flight is answered.
 */
export function startOrderClient(scratchReady, { intervalMs = 20, log = () => undefined } = {}) {
  const counts = { sent: 0, accepted: 0, refusedHalted: 0, refusedOther: 0, unreachable: 0, categories: {}, twoWriters: 0, funded: false };
  const bump = (category) => (counts.categories[category] = (counts.categories[category] ?? 0) + 1);
  let stopped = false;
  let primary = null;
  // The phase at the last poll: admission (RETRY_LATER) is decided before the phase, so it hides it.
  let primaryPhase = null;
  let depositing = false;
  let depositFailures = 0;
  const inFlight = new Set();

  // Health decides the target: a fenced or follower engine still answers orders while halted (a 200
  // PHASE_HALTED, decided before its write check), so a 409 alone would not reveal a switchover.
  async function resolve(scratch) {
    const seen = await Promise.all(
      enginesIn(scratch).map((e) =>
        call(e, 'GET', '/health', null, 500).then(
          (r) => ({ engine: e, health: r.body }),
          () => null,
        ),
      ),
    );
    const writers = seen.filter((s) => s && s.health.role === 'primary' && !s.health.fenced);
    if (writers.length > 1) counts.twoWriters++;
    primary = writers[0]?.engine ?? null;
    if (primary) primaryPhase = writers[0].health.phase;
    return seen.filter(Boolean);
  }

  async function fund(engine) {
    depositing = true;
    // The first failure says why; the run's summary line says if the account was never funded.
    const failed = (why) => depositFailures++ === 0 && log(`deposit to ${engine.name} failed (${why}); retrying before each order`);
    try {
      const r = await call(engine, 'POST', `/accounts/${ACCOUNT}/deposit`, { asset: 'USDT', amount: '100000' }, 2000);
      if (r.status === 200) counts.funded = true;
      else failed(`HTTP ${r.status}: ${r.body.error}`);
    } catch (e) {
      failed(e.cause?.code ?? e.name);
    } finally {
      depositing = false;
    }
  }

  async function send(engine, scratch, order) {
    const phase = primaryPhase;
    try {
      const r = await call(engine, 'POST', '/orders', order, 2000);
      if (r.status >= 200 && r.status < 300 && r.body.status !== 'rejected') {
        counts.accepted++;
        if (Number(r.body.filled) > 0) bump('accepted and traded');
      } else if (r.body.reason === 'PHASE_HALTED') counts.refusedHalted++;
      else {
        counts.refusedOther++;
        bump(`${r.body.reason ?? `HTTP ${r.status}`} (${phase})`);
        if (r.status === 409) await resolve(scratch);
      }
    } catch (e) {
      counts.unreachable++;
      bump(`no answer (${e.cause?.code ?? e.name})`);
      primary = null;
    }
  }

  const done = (async () => {
    const scratch = await scratchReady;
    if (!scratch) return;
    // Before the incident the engine is briefly halted too (it starts so): wait for its own halt code.
    let order = null;
    while (!stopped && !order) {
      const halted = (await resolve(scratch)).find((s) => s.health.phase === 'halted' && s.health.haltCode === 'EXCESS_QUEUE_DEPTH');
      if (halted) order = bid((Math.floor(Number(halted.health.marks.BTCUSDT) * BELOW_MARK * 10) / 10).toFixed(1));
      else await sleep(POLL_MS);
    }
    const poller = (async () => {
      while (!stopped) {
        await resolve(scratch);
        await sleep(POLL_MS);
      }
    })();
    // Open loop on a fixed schedule: a slow answer does not delay the next order.
    for (let next = performance.now(); !stopped;) {
      counts.sent++;
      const target = primary;
      if (!target) {
        counts.unreachable++;
        bump('no writable primary');
      } else {
        const p = !counts.funded && !depositing ? fund(target).then(() => send(target, scratch, order)) : send(target, scratch, order);
        inFlight.add(p);
        void p.finally(() => inFlight.delete(p));
      }
      next += intervalMs;
      await sleep(Math.max(0, next - performance.now()));
    }
    await poller;
    await Promise.all(inFlight);
  })();

  return {
    stop: async () => {
      stopped = true;
      await done;
      return counts;
    },
  };
}
