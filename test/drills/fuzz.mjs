// Bad-input drills: seeded mutations of playbooks, snapshots and control-API requests. Every case must
// end in the documented error (PlaybookError/InputError, SnapshotError, HTTP 4xx), never a crash or hang.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dist, ROOT, rng, withTempDir } from './lib.mjs';

function mutate(r, text) {
  const lines = text.split('\n');
  const kind = Math.floor(r() * 8);
  const i = Math.floor(r() * lines.length);
  switch (kind) {
    case 0: {
      const b = Buffer.from(text);
      for (let k = 0; k < 1 + Math.floor(r() * 4); k++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
      return b;
    }
    case 1:
      lines.splice(i, 1);
      return lines.join('\n');
    case 2:
      lines.splice(i, 0, lines[Math.floor(r() * lines.length)]);
      return lines.join('\n');
    case 3:
      return text.slice(0, Math.floor(r() * text.length));
    case 4:
      lines[i] = lines[i].replace(/: .*/, `: ${['[', '{', '${{', '"', "'", '*x', '&a', '!!binary x', '-1', '1e999', 'null', '~'][Math.floor(r() * 12)]}`);
      return lines.join('\n');
    case 5:
      lines[i] = ` \t${lines[i]}`;
      return lines.join('\n');
    case 6:
      lines[i] = lines[i].replace(/[a-z]+/, (w) => w.split('').reverse().join(''));
      return lines.join('\n');
    default:
      return text.replace(/\$\{\{ ([^}]*) \}\}/, (_m, e) => `\${{ ${e.slice(0, Math.floor(r() * e.length))} }}`);
  }
}

export const playbookFuzz = {
  name: 'fuzz: playbook loader',
  trials: (long) => (long ? 10_000 : 3_000),
  async run(trials, seed) {
    const { parsePlaybook } = await import(dist('playbook/load.js'));
    const { PlaybookError, InputError } = await import(dist('errors.js'));
    const sources = readdirSync(join(ROOT, 'playbooks'))
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => readFileSync(join(ROOT, 'playbooks', f), 'utf8'));
    const r = rng(seed);
    const failures = [];
    let refused = 0;
    for (let t = 0; t < trials; t++) {
      const input = mutate(r, sources[t % sources.length]);
      const bytes = Buffer.isBuffer(input) ? input : Buffer.from(input);
      const started = performance.now();
      try {
        parsePlaybook(bytes, 'fuzz.yaml', '/tmp/fuzz.yaml');
      } catch (e) {
        if (e instanceof PlaybookError) {
          refused++;
          if (!e.diagnostics.every((d) => d.line >= 1 && d.col >= 1 && !d.message.includes('\n'))) failures.push(`trial ${t}: diagnostic without a position`);
        } else if (!(e instanceof InputError)) failures.push(`trial ${t}: ${e?.constructor?.name}: ${e?.message}`);
      }
      if (performance.now() - started > 2_000) failures.push(`trial ${t}: took ${Math.round(performance.now() - started)} ms`);
    }
    return {
      trials,
      passed: trials - failures.length,
      lost: 0,
      detail: `${refused} refused with file:line:col, ${trials - refused - failures.length} still valid`,
      failures,
    };
  },
};

export const snapshotFuzz = {
  name: 'fuzz: snapshot reader',
  trials: (long) => (long ? 5_000 : 1_000),
  async run(trials, seed) {
    const { SnapshotCursor } = await import(dist('snapshot/cursor.js'));
    const { SnapshotError } = await import(dist('snapshot/format.js'));
    const { writeCorpus } = await import('../support/snapshot-corpus.mjs');
    return withTempDir(async (dir) => {
      const good = join(dir, 'good.ndjson');
      writeCorpus({ pre: good, post: join(dir, 'post.ndjson'), records: 300, seed });
      const text = readFileSync(good, 'utf8');
      const r = rng(seed);
      const failures = [];
      let refused = 0;
      const file = join(dir, 'fuzz.ndjson');
      for (let t = 0; t < trials; t++) {
        const m = mutate(r, text);
        writeFileSync(file, m);
        const c = (() => {
          try {
            return new SnapshotCursor(file);
          } catch (e) {
            return e;
          }
        })();
        if (!(c instanceof SnapshotCursor)) {
          if (c instanceof SnapshotError) refused++;
          else failures.push(`trial ${t}: ${c?.message}`);
          continue;
        }
        try {
          while (c.next());
        } catch (e) {
          if (e instanceof SnapshotError) refused++;
          else failures.push(`trial ${t}: ${e?.constructor?.name}: ${e?.message}`);
        } finally {
          c.close();
        }
      }
      return { trials, passed: trials - failures.length, lost: 0, detail: `${refused} refused naming file and line`, failures };
    });
  },
};

export const apiFuzz = {
  name: 'fuzz: control API',
  trials: (long) => (long ? 10_000 : 2_000),
  async run(trials, seed) {
    const { startEngine, stopEngine } = await import(dist('engine-client/supervisor.js'));
    return withTempDir(async (dir) => {
      const { client } = await startEngine(join(dir, 'engine'), { feedInterval: '0ms', exitWithMe: true });
      try {
        await client.deposit('fuzz-a', 'USDT', '100000');
        await client.setPhase('open');
        const r = rng(seed);
        const pick = (xs) => xs[Math.floor(r() * xs.length)];
        const values = [
          null,
          true,
          -1,
          0,
          1e308,
          'x',
          '',
          '0.1',
          '-5',
          '1e3',
          '99999999999999999999999',
          '1.123456789',
          [],
          {},
          'BTCUSDT',
          'buy',
          'limit',
          'market',
          'open',
          'halted',
          'margin',
          '1.4.3',
          '../../etc',
          '%00',
        ];
        const keys = [
          'account',
          'symbol',
          'side',
          'type',
          'price',
          'qty',
          'tif',
          'postOnly',
          'reduceOnly',
          'marginMode',
          'clientOrderId',
          'phase',
          'weight',
          'component',
          'version',
          'asset',
          'amount',
          'kind',
          'events',
          'from',
          'to',
        ];
        const paths = [
          '/orders',
          '/orders/1',
          '/orders/abc',
          '/orders/000000000001',
          '/accounts/fuzz-a',
          '/accounts/fuzz-a/deposit',
          '/accounts/%E0%A4',
          '/accounts/@fees',
          '/phase',
          '/admission',
          '/modules/activate',
          '/modules/rollback',
          '/funding/recompute',
          '/health',
          '/metrics',
          '/nope',
          '/state',
          '/fault',
        ];
        const failures = [];
        let fourxx = 0;
        for (let t = 0; t < trials; t++) {
          const method = pick(['GET', 'POST', 'DELETE', 'PUT']);
          let path = pick(paths);
          if (path === '/fault') path = '/nope'; // a crash fault would end the drill, not test it
          const body = {};
          for (let k = 0; k < Math.floor(r() * 6); k++) body[pick(keys)] = pick(values);
          if (body.kind === undefined && path === '/fault') body.kind = 'none';
          const raw = r() < 0.05 ? '{"broken' : JSON.stringify(r() < 0.1 ? pick(values) : body);
          try {
            const res = await fetch(`${client.url}${path}`, {
              method,
              headers: { authorization: `Bearer ${readFileSync(join(dir, 'engine', 'control.token'), 'utf8').trim()}`, 'content-type': 'application/json' },
              body: method === 'GET' ? undefined : raw,
            });
            await res.arrayBuffer();
            if (res.status >= 500) failures.push(`trial ${t}: ${method} ${path} ${raw} -> ${res.status}`);
            if (res.status >= 400) fourxx++;
          } catch (e) {
            failures.push(`trial ${t}: ${method} ${path}: ${e.message}`);
          }
        }
        const h = await client.health();
        if (Object.values(h.ledger).some((v) => v !== '0')) failures.push(`ledger unbalanced after the fuzz: ${JSON.stringify(h.ledger)}`);
        return { trials, passed: trials - failures.length, lost: 0, detail: `${fourxx} answered 4xx JSON, engine healthy after`, failures };
      } finally {
        await stopEngine(join(dir, 'engine'));
      }
    });
  },
};
