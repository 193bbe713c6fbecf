import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { fillArgv } from '../../src/steps/providers/command.js';
import { haproxyAnswer, parseServersState } from '../../src/steps/providers/haproxy.js';
import {
  ProviderError,
  commandProvider,
  haproxyProvider,
  nginxProvider,
  providerFor,
  trafficProvider,
  type ProviderDeps,
  type TrafficProviderConfig,
} from '../../src/steps/providers/index.js';
import { parseUpstream, renderUpstream } from '../../src/steps/providers/nginx.js';
import type { SocketCommand } from '../../src/steps/effects.js';
import { fakeClient, health, scriptedExec, type ScriptedCommand } from '../support/fakes.js';

/** `show servers state be_orders` as HAProxy 2.6.12 answered it (captured), canary at 50. */
const CAPTURED_STATE =
  '1\n' +
  '# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n' +
  '3 be_orders 1 engine 127.0.0.1 2 0 50 100 1 1 0 2 0 0 0 0 - 17070 - 0 0 - - 0\n' +
  '3 be_orders 2 sorry 127.0.0.1 2 0 100 100 1 1 0 2 0 0 0 0 - 17071 - 0 0 - - 0\n' +
  '\n';

const SOCKET = 'unix:///run/haproxy/admin.sock';

/**
 * A HAProxy runtime API in memory: `set server` and `show servers state` with HAProxy's own answers
 * (captured from 2.6), every line recorded. `answers` overrides the answer to a line.
 */
function fakeHaproxy(o: { weights?: Record<string, number>; answers?: Record<string, string | Error>; ignoreSets?: boolean } = {}) {
  const weights = new Map(Object.entries(o.weights ?? { engine: 100, sorry: 100 }));
  const lines: string[] = [];
  const options: { address: string; timeoutMs: number }[] = [];
  const state = (): string =>
    CAPTURED_STATE.split('\n')
      .slice(0, 2)
      .concat(
        [...weights].map(([name, w], i) => `3 be_orders ${i + 1} ${name} 127.0.0.1 2 0 ${w} 100 1 1 0 2 0 0 0 0 - ${17070 + i} - 0 0 - - 0`),
        '',
        '',
      )
      .join('\n');
  const socket: SocketCommand = (address, line, opts) => {
    lines.push(line);
    options.push({ address, timeoutMs: opts.timeoutMs });
    const scripted = o.answers?.[line];
    if (scripted instanceof Error) return Promise.reject(scripted);
    if (scripted !== undefined) return Promise.resolve(scripted);
    const set = /^set server (\S+)\/(\S+) weight (\d+)$/.exec(line);
    if (set) {
      if (set[1] !== 'be_orders') return Promise.resolve('No such backend.\n\n');
      if (!weights.has(set[2] ?? '')) return Promise.resolve('No such server.\n\n');
      if (!o.ignoreSets) weights.set(set[2] ?? '', Number(set[3]));
      return Promise.resolve('\n');
    }
    if (line === 'show servers state be_orders') return Promise.resolve(state());
    if (line.startsWith('show servers state ')) return Promise.resolve("Can't find backend.\n\n");
    return Promise.resolve('Unknown command.\n\n');
  };
  return { socket, lines, options, weights };
}

function deps(over: Partial<ProviderDeps> = {}): ProviderDeps {
  return {
    exec: scriptedExec([{}]).exec,
    socket: () => Promise.reject(new Error('no socket in this test')),
    signal: new AbortController().signal,
    playbookDir: '/playbooks',
    ...over,
  };
}

const haproxyConfig = (over: Record<string, unknown> = {}): TrafficProviderConfig =>
  trafficProvider.parse({ type: 'haproxy', socket: SOCKET, backend: 'be_orders', canary: 'engine', remainder: 'sorry', ...over });

async function providerError(p: Promise<unknown>): Promise<ProviderError> {
  const e = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(e).toBeInstanceOf(ProviderError);
  return e as ProviderError;
}

describe('provider schemas', () => {
  it('parse the documented YAML examples, with defaults', () => {
    const haproxy = trafficProvider.parse(
      parseYaml('{ type: haproxy, socket: unix:///run/haproxy/admin.sock, backend: be_orders, canary: engine, remainder: sorry }') as unknown,
    );
    expect(haproxy).toEqual({ type: 'haproxy', socket: SOCKET, backend: 'be_orders', canary: 'engine', remainder: 'sorry', timeout: '5s' });
    const nginx = trafficProvider.parse(
      parseYaml(
        '{ type: nginx, upstreamFile: /etc/nginx/conf.d/orders.conf, upstream: orders, canary: 127.0.0.1:7070, remainder: 127.0.0.1:7071, test: [nginx, -t], reload: [nginx, -s, reload] }',
      ) as unknown,
    );
    expect(nginx).toMatchObject({ type: 'nginx', canary: '127.0.0.1:7070', test: ['nginx', '-t'], reload: ['nginx', '-s', 'reload'], timeout: '30s' });
    expect(trafficProvider.parse({ type: 'nginx', upstreamFile: 'o.conf', upstream: 'orders', canary: '127.0.0.1:7070' })).toMatchObject({
      test: ['nginx', '-t'],
      reload: ['nginx', '-s', 'reload'],
    });
    // docs/traffic-providers.md, the command example
    const kubectl = trafficProvider.parse(
      parseYaml(`
type: command
set:
  - - kubectl
    - --namespace=exchange
    - patch
    - httproute/orders
    - --type=json
    - '--patch=[{"op":"replace","path":"/spec/rules/0/backendRefs/0/weight","value":\${{ weight }}},{"op":"replace","path":"/spec/rules/0/backendRefs/1/weight","value":\${{ remainder }}}]'
verify: [kubectl, --namespace=exchange, get, httproute/orders, '-o=jsonpath={.spec.rules[0].backendRefs[0].weight}']
timeout: 20s
`) as unknown,
    );
    expect(kubectl.type === 'command' && fillArgv(kubectl.set[0] ?? [], { weight: 10, remainder: 90, stage: 1 })[5]).toBe(
      '--patch=[{"op":"replace","path":"/spec/rules/0/backendRefs/0/weight","value":10},{"op":"replace","path":"/spec/rules/0/backendRefs/1/weight","value":90}]',
    );
    expect(trafficProvider.parse({ type: 'engine' })).toEqual({ type: 'engine' });
    expect(trafficProvider.parse({ type: 'command', set: [['gw', 'set', '${{ weight }}']] })).toMatchObject({ timeout: '30s' });
  });

  it('refuse what could not reach the gateway safely', () => {
    const fails = (schema: { safeParse(v: unknown): { success: boolean } }, v: unknown) => expect(schema.safeParse(v).success, JSON.stringify(v)).toBe(false);
    const h = { type: 'haproxy', socket: SOCKET, backend: 'be_orders', canary: 'engine' };
    fails(haproxyProvider, { ...h, socket: '/run/haproxy/admin.sock' });
    fails(haproxyProvider, { ...h, socket: 'http://127.0.0.1:9999' });
    fails(haproxyProvider, { ...h, backend: 'be_orders; shutdown sessions' });
    fails(haproxyProvider, { ...h, remainder: 'engine' });
    fails(haproxyProvider, { ...h, weight: 5 });
    const n = { type: 'nginx', upstreamFile: 'o.conf', upstream: 'orders', canary: '127.0.0.1:7070' };
    fails(nginxProvider, { ...n, canary: '127.0.0.1:7070; include /etc/passwd' });
    fails(nginxProvider, { ...n, upstream: 'orders {' });
    fails(nginxProvider, { ...n, test: [] });
    fails(nginxProvider, { ...n, directives: ['keepalive 32; }'] });
    fails(commandProvider, { type: 'command', set: [['gw', '${{ vars.weight }}']] });
    fails(commandProvider, { type: 'command', set: [] });
    fails(commandProvider, { type: 'command', set: [['gw']], current: ['gw', 'get', '${{ stage }}'] });
    fails(trafficProvider, { type: 'envoy' });
    expect(haproxyProvider.safeParse({ ...h, socket: 'tcp://127.0.0.1:9999' }).success).toBe(true);
    expect(haproxyProvider.safeParse({ ...h, socket: '${{ vars.haproxySocket }}' }).success).toBe(true);
  });
});

describe('haproxy provider (a scripted runtime API)', () => {
  it('parses a real `show servers state` dump by column name', () => {
    expect(parseServersState(CAPTURED_STATE)).toEqual([
      { backend: 'be_orders', server: 'engine', address: '127.0.0.1', opState: 2, adminState: 0, weight: 50, initialWeight: 100, port: 17070 },
      { backend: 'be_orders', server: 'sorry', address: '127.0.0.1', opState: 2, adminState: 0, weight: 100, initialWeight: 100, port: 17071 },
    ]);
    expect(() => parseServersState("Can't find backend.\n\n")).toThrow('not a server state dump');
    expect(() => parseServersState('1\n# be_id be_name srv_name\n3 be_orders engine\n')).toThrow('without the columns srv_addr, srv_op_state');
  });

  it('sets the canary to W then the remainder to 100-W, reads the backend back, and returns what it read', async () => {
    const gw = fakeHaproxy();
    const p = providerFor(haproxyConfig(), deps({ socket: gw.socket }));
    expect(p.type).toBe('haproxy');
    expect(await p.set(10, 1)).toEqual({ weight: 10, remainderWeight: 90 });
    expect(await p.set(100, 3)).toEqual({ weight: 100, remainderWeight: 0 });
    expect(gw.lines).toEqual([
      'set server be_orders/engine weight 10',
      'set server be_orders/sorry weight 90',
      'show servers state be_orders',
      'set server be_orders/engine weight 100',
      'set server be_orders/sorry weight 0',
      'show servers state be_orders',
    ]);
    expect(gw.options.every((o) => o.address === SOCKET && o.timeoutMs === 5_000)).toBe(true);
  });

  it('aborts by raising the remainder to 100 before the canary goes to 0, so both are never 0 at once', async () => {
    const gw = fakeHaproxy({ weights: { engine: 100, sorry: 0 } });
    const p = providerFor(haproxyConfig({ timeout: '2s' }), deps({ socket: gw.socket }));
    expect(await p.abort()).toEqual({ weight: 0, remainderWeight: 100 });
    expect(gw.lines).toEqual(['set server be_orders/sorry weight 100', 'set server be_orders/engine weight 0', 'show servers state be_orders']);
    expect(gw.options[0]?.timeoutMs).toBe(2_000);
  });

  it('without a remainder changes only the canary; current() reads the weights in place', async () => {
    const gw = fakeHaproxy({ weights: { engine: 25, sorry: 75 } });
    const solo = providerFor(haproxyConfig({ remainder: undefined }), deps({ socket: gw.socket }));
    expect(await solo.current()).toEqual({ weight: 25, remainderWeight: null });
    expect(await solo.set(40, 2)).toEqual({ weight: 40, remainderWeight: null });
    expect(gw.lines).toEqual(['show servers state be_orders', 'set server be_orders/engine weight 40', 'show servers state be_orders']);
    expect(await providerFor(haproxyConfig(), deps({ socket: gw.socket })).current()).toEqual({ weight: 40, remainderWeight: 75 });
  });

  it("maps each of HAProxy's refusals to one line naming the backend and server", async () => {
    const cases: [string, string, ProviderError['failure'], string][] = [
      ['No such backend.\n\n', 'be_orders/engine', 'not-found', `no such backend be_orders (${SOCKET})`],
      ['No such server.\n\n', 'be_orders/engine', 'not-found', `no such server engine in backend be_orders (${SOCKET})`],
      [
        'Permission denied\n\n',
        'be_orders/engine',
        'forbidden',
        `Permission denied: the socket ${SOCKET} is not at admin level (configure \`stats socket /run/haproxy/admin.sock level admin\`)`,
      ],
      [
        "Backend is using a static LB algorithm and only accepts weights '0%' and '100%'.\n\n",
        'be_orders/engine',
        'rejected',
        'backend be_orders uses a static algorithm (static-rr, first), which accepts only weights 0 and 100% of the initial weight, not 50: use balance roundrobin or leastconn for a staged shift',
      ],
      [
        'Absolute weight can only be between 0 and 256 inclusive.\n\n',
        'be_orders/engine',
        'rejected',
        'weight 50 refused: Absolute weight can only be between 0 and 256 inclusive.',
      ],
      ['Unknown command.\nusage...\n\n', 'be_orders/engine', 'failed', 'unexpected answer: Unknown command.; usage...'],
    ];
    for (const [answer, target, failure, detail] of cases) {
      const gw = fakeHaproxy({ answers: { 'set server be_orders/engine weight 50': answer } });
      const e = await providerError(providerFor(haproxyConfig(), deps({ socket: gw.socket })).set(50, 2));
      expect({ target: e.target, failure: e.failure, message: e.message }).toEqual({ target, failure, message: `haproxy ${target}: ${detail}` });
      expect(gw.lines).toEqual(['set server be_orders/engine weight 50']);
    }
    expect(haproxyAnswer('\n', { socket: SOCKET, backend: 'b', server: 's', weight: 1 })).toBeNull();
    const tcp = haproxyAnswer('Permission denied\n\n', { socket: 'tcp://127.0.0.1:9999', backend: 'b', server: 's', weight: 1 });
    expect(tcp?.detail).toContain('`stats socket ipv4@127.0.0.1:9999 level admin`');
  });

  it('names the wrong backend and server the way the operator wrote them', async () => {
    const gw = fakeHaproxy();
    const backend = await providerError(providerFor(haproxyConfig({ backend: 'be_nope' }), deps({ socket: gw.socket })).set(10, 1));
    expect(backend.message).toBe(`haproxy be_nope/engine: no such backend be_nope (${SOCKET})`);
    const current = await providerError(providerFor(haproxyConfig({ backend: 'be_nope' }), deps({ socket: gw.socket })).current());
    expect(current.message).toBe(`haproxy be_nope: no such backend be_nope (${SOCKET})`);
    const remainder = await providerError(providerFor(haproxyConfig({ remainder: 'old' }), deps({ socket: gw.socket })).set(10, 1));
    expect(remainder.message).toBe(`haproxy be_orders/old: no such server old in backend be_orders (${SOCKET})`);
  });

  it('fails when the read-back differs from what was set, or the socket cannot be reached', async () => {
    const gw = fakeHaproxy({ ignoreSets: true, weights: { engine: 100, sorry: 100 } });
    const e = await providerError(providerFor(haproxyConfig(), deps({ socket: gw.socket })).set(10, 1));
    expect(e).toMatchObject({ failure: 'mismatch', message: 'haproxy be_orders/engine: weight set to 10, `show servers state` reads 100' });
    const down = fakeHaproxy({ answers: { 'set server be_orders/engine weight 10': new Error(`socket ${SOCKET}: connect ENOENT /run/haproxy/admin.sock`) } });
    const refused = await providerError(providerFor(haproxyConfig(), deps({ socket: down.socket })).set(10, 1));
    expect(refused).toMatchObject({
      failure: 'unreachable',
      message: `haproxy be_orders/engine: cannot reach the stats socket: socket ${SOCKET}: connect ENOENT /run/haproxy/admin.sock`,
    });
    // A refused connection never saw the command: asked again (4 more times over 3.75 s) before giving up.
    expect(down.lines.filter((l) => l === 'set server be_orders/engine weight 10')).toHaveLength(5);
  });

  it('asks a socket that refused the connection again: HAProxy back within seconds is no failure', async () => {
    const gw = fakeHaproxy();
    let refusals = 2;
    const socket: SocketCommand = (address, line, opts) =>
      line.startsWith('set server') && refusals-- > 0 ? Promise.reject(new Error(`socket ${address}: connect ECONNREFUSED`)) : gw.socket(address, line, opts);
    await providerFor(haproxyConfig(), deps({ socket })).set(10, 1);
    expect(gw.lines.filter((l) => l === 'set server be_orders/engine weight 10')).toHaveLength(1);
    // A timeout is not retried: the command may have been applied.
    let asked = 0;
    const slow: SocketCommand = () => {
      asked++;
      return Promise.reject(new Error(`socket ${SOCKET}: no answer within 2000ms`));
    };
    expect((await providerError(providerFor(haproxyConfig(), deps({ socket: slow })).set(10, 1))).failure).toBe('unreachable');
    expect(asked).toBe(1);
  });

  it("rejects with the step's abort reason when the step is aborted", async () => {
    const ac = new AbortController();
    const reason = new Error('interrupted');
    const socket: SocketCommand = () => {
      ac.abort(reason);
      return Promise.reject(new Error('socket: aborted'));
    };
    await expect(providerFor(haproxyConfig(), deps({ socket, signal: ac.signal })).set(10, 1)).rejects.toBe(reason);
  });
});

describe('nginx provider (a temp dir, scripted test and reload)', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const ORIGINAL = '# what nginx served before\nupstream orders {\n    server 127.0.0.1:7071;\n    keepalive 8;\n}\n';
  function setup(script: ScriptedCommand[] = [{}], over: Record<string, unknown> = {}) {
    const dir = mkdtempSync(join(tmpdir(), 'recoverctl-nginx-unit-'));
    dirs.push(dir);
    mkdirSync(join(dir, 'conf.d'));
    const file = join(dir, 'conf.d', 'orders.conf');
    writeFileSync(file, ORIGINAL);
    const { exec, calls } = scriptedExec(script);
    const config = trafficProvider.parse({
      type: 'nginx',
      upstreamFile: 'conf.d/orders.conf',
      upstream: 'orders',
      canary: '127.0.0.1:7070',
      remainder: '127.0.0.1:7071',
      test: ['nginx', '-p', dir, '-t'],
      reload: ['nginx', '-p', dir, '-s', 'reload'],
      ...over,
    });
    const p = providerFor(config, deps({ exec, playbookDir: dir }));
    return { dir, file, previous: `${file}.recoverctl-previous`, calls, p, config };
  }

  it('renders the upstream block exactly: weight=W, weight=100-W, down for 0, directives after the servers', () => {
    const c = { upstream: 'orders', canary: '127.0.0.1:7070', remainder: '127.0.0.1:7071' };
    expect(renderUpstream(c, 10)).toBe(
      '# Written by recoverctl traffic.shift: canary 127.0.0.1:7070 weight 10, remainder 127.0.0.1:7071 weight 90.\n' +
        'upstream orders {\n' +
        '    server 127.0.0.1:7070 weight=10;\n' +
        '    server 127.0.0.1:7071 weight=90;\n' +
        '}\n',
    );
    expect(renderUpstream(c, 0)).toContain('    server 127.0.0.1:7070 down;\n    server 127.0.0.1:7071 weight=100;\n');
    expect(renderUpstream(c, 100)).toContain('    server 127.0.0.1:7070 weight=100;\n    server 127.0.0.1:7071 down;\n');
    expect(renderUpstream({ upstream: 'orders', canary: 'unix:/run/engine.sock', directives: ['keepalive 32', 'zone orders 64k'] }, 50)).toBe(
      '# Written by recoverctl traffic.shift: canary unix:/run/engine.sock weight 50.\n' +
        'upstream orders {\n' +
        '    server unix:/run/engine.sock weight=50;\n' +
        '    keepalive 32;\n' +
        '    zone orders 64k;\n' +
        '}\n',
    );
  });

  it('parses weights from a rendered or a hand-written file: no weight= is 1, down is 0, absent is 0', () => {
    const c = { upstream: 'orders', canary: '127.0.0.1:7070', remainder: '127.0.0.1:7071' };
    for (const w of [0, 10, 50, 100]) expect(parseUpstream(renderUpstream(c, w), c)).toEqual({ weight: w, remainderWeight: 100 - w });
    expect(parseUpstream(ORIGINAL, c)).toEqual({ weight: 0, remainderWeight: 1 });
    expect(
      parseUpstream('upstream other { server 127.0.0.1:7070; }\nupstream orders{server 127.0.0.1:7070 weight=3 max_fails=2;server 127.0.0.1:7071 down;}', c),
    ).toEqual({
      weight: 3,
      remainderWeight: 0,
    });
    expect(parseUpstream('# upstream orders { server 127.0.0.1:7070; }\n', c)).toBeNull();
    expect(parseUpstream('upstream orders_old { server 127.0.0.1:7070; }\n', c)).toBeNull();
  });

  it('keeps the original as .recoverctl-previous, writes the file, runs test then reload (argv, no shell), and reads back', async () => {
    const { dir, file, previous, calls, p } = setup();
    expect(await p.current()).toEqual({ weight: 0, remainderWeight: 1 });
    expect(await p.set(10, 1)).toEqual({ weight: 10, remainderWeight: 90 });
    expect(await p.set(50, 2)).toEqual({ weight: 50, remainderWeight: 50 });
    expect(readFileSync(previous, 'utf8')).toBe(ORIGINAL);
    expect(readFileSync(file, 'utf8')).toBe(renderUpstream({ upstream: 'orders', canary: '127.0.0.1:7070', remainder: '127.0.0.1:7071' }, 50));
    expect(calls.map((c) => [c.command, c.shell, c.cwd])).toEqual([
      [['nginx', '-p', dir, '-t'], false, dir],
      [['nginx', '-p', dir, '-s', 'reload'], false, dir],
      [['nginx', '-p', dir, '-t'], false, dir],
      [['nginx', '-p', dir, '-s', 'reload'], false, dir],
    ]);
  });

  it('when the test fails, puts the file back as it was, does not reload, and says what nginx -t said', async () => {
    const stderr =
      '2026/11/30 17:28:24 [emerg] 583#583: invalid port in upstream "127.0.0.1:99999" in /x/conf.d/orders.conf:3\nnginx: configuration file /x/nginx.conf test failed\n';
    const { file, calls, p } = setup([{}, {}, { exitCode: 1, stderr }]);
    await p.set(10, 1);
    const before = readFileSync(file, 'utf8');
    const e = await providerError(p.set(50, 2));
    expect(e.failure).toBe('rejected');
    expect(e.message).toBe(
      `nginx upstream orders in ${file}: \`nginx -p ${calls[0]?.cwd ?? ''} -t\` exited with code 1: [emerg] invalid port in upstream "127.0.0.1:99999" in /x/conf.d/orders.conf:3; nginx: configuration file /x/nginx.conf test failed; the file was put back as it was`,
    );
    expect(readFileSync(file, 'utf8')).toBe(before);
    expect(calls).toHaveLength(3);
  });

  it('when reload fails, puts the file back too', async () => {
    const { file, p } = setup([{}, { exitCode: 1, stderr: 'nginx: [error] open() "/run/nginx.pid" failed (2: No such file or directory)\n' }]);
    const e = await providerError(p.set(10, 1));
    expect(e).toMatchObject({ failure: 'failed' });
    expect(e.message).toContain(
      '-s reload` exited with code 1: nginx: [error] open() "/run/nginx.pid" failed (2: No such file or directory); the file was put back as it was',
    );
    expect(readFileSync(file, 'utf8')).toBe(ORIGINAL);
  });

  it('aborts by restoring the original, testing and reloading it, then forgetting it; a second abort changes nothing', async () => {
    const { file, previous, calls, p } = setup();
    await p.set(100, 3);
    expect(await p.abort()).toEqual({ weight: 0, remainderWeight: 1 });
    expect(readFileSync(file, 'utf8')).toBe(ORIGINAL);
    expect(existsSync(previous)).toBe(false);
    expect(calls).toHaveLength(4);
    expect(await p.abort()).toEqual({ weight: 0, remainderWeight: 1 });
    expect(calls).toHaveLength(4);
  });

  it('a resumed shift (a fresh provider) keeps the first original, not its own half-way file', async () => {
    const first = setup();
    await first.p.set(10, 1);
    const again = providerFor(first.config, deps({ exec: scriptedExec([{}]).exec, playbookDir: first.dir }));
    expect(await again.current()).toEqual({ weight: 10, remainderWeight: 90 });
    await again.set(50, 2);
    expect(readFileSync(first.previous, 'utf8')).toBe(ORIGINAL);
  });

  it('refuses a missing upstream file or one without the upstream block, and times out a hung test', async () => {
    const { file, p } = setup();
    rmSync(file);
    expect((await providerError(p.set(10, 1))).message).toBe(
      `nginx upstream orders in ${file}: the file does not exist: write the upstream block nginx serves before the shift first`,
    );
    writeFileSync(file, 'upstream other { server 127.0.0.1:1; }\n');
    expect((await providerError(p.current())).message).toBe(`nginx upstream orders in ${file}: the file has no \`upstream orders { }\` block`);
    const hung = setup([{ hang: true }], { timeout: '1ms' });
    const e = await providerError(hung.p.set(10, 1));
    expect(e.failure).toBe('unreachable');
    expect(e.message).toContain('-t` did not finish within 1ms; the file was put back as it was');
    expect(readFileSync(hung.file, 'utf8')).toBe(ORIGINAL);
  });
});

describe('command provider (scripted exec)', () => {
  it('fills templates inside argv elements only, never splitting or touching anything else', () => {
    expect(
      fillArgv(['kubectl', '--patch={"w":${{ weight }},"r":${{remainder}}}', 'stage-${{  stage }}', '$weight', '${{ env.X }}'], {
        weight: 30,
        remainder: 70,
        stage: 2,
      }),
    ).toEqual(['kubectl', '--patch={"w":30,"r":70}', 'stage-2', '$weight', '${{ env.X }}']);
  });

  const config = (over: Record<string, unknown> = {}) =>
    trafficProvider.parse({
      type: 'command',
      set: [
        ['gw', 'canary', '${{ weight }}'],
        ['gw', 'rest', '${{ remainder }}', '--stage', '${{ stage }}'],
      ],
      ...over,
    });

  it('runs each set command filled in, without a shell, then verify, and returns the verified weight', async () => {
    const { exec, calls } = scriptedExec([{}, {}, { stdout: '30\n' }]);
    const p = providerFor(config({ verify: ['gw', 'get', '--expect', '${{ weight }}'] }), deps({ exec }));
    expect(await p.set(30, 2)).toEqual({ weight: 30, remainderWeight: null });
    expect(calls.map((c) => [c.command, c.shell, c.cwd])).toEqual([
      [['gw', 'canary', '30'], false, '/playbooks'],
      [['gw', 'rest', '70', '--stage', '2'], false, '/playbooks'],
      [['gw', 'get', '--expect', '30'], false, '/playbooks'],
    ]);
  });

  it('fails on a verify that prints another weight, or a command that exits non-zero', async () => {
    const wrong = scriptedExec([{}, {}, { stdout: '10' }]);
    const e = await providerError(providerFor(config({ verify: ['gw', 'get'] }), deps({ exec: wrong.exec })).set(30, 2));
    expect(e).toMatchObject({ failure: 'mismatch', message: 'command `gw get`: weight set to 30, verify prints 10' });
    const failing = scriptedExec([{ exitCode: 3, stderr: 'error: httproutes "orders" not found\n' }]);
    const f = await providerError(providerFor(config(), deps({ exec: failing.exec })).set(30, 2));
    expect(f.message).toBe('command `gw canary 30`: exited with code 3: error: httproutes "orders" not found');
    expect(failing.calls).toHaveLength(1);
    const junk = scriptedExec([{ stdout: 'fifty' }]);
    const j = await providerError(providerFor(config({ current: ['gw', 'get'] }), deps({ exec: junk.exec })).current());
    expect(j.message).toBe('command `gw get`: printed "fifty", expected the weight as a whole number');
  });

  it('aborts with the abort commands, or by default the set commands at weight 0, remainder 100, stage 0', async () => {
    const byDefault = scriptedExec([{}]);
    expect(await providerFor(config(), deps({ exec: byDefault.exec })).abort()).toEqual({ weight: 0, remainderWeight: null });
    expect(byDefault.calls.map((c) => c.command)).toEqual([
      ['gw', 'canary', '0'],
      ['gw', 'rest', '100', '--stage', '0'],
    ]);
    const own = scriptedExec([{}]);
    await providerFor(config({ abort: [['gw', 'rollback', '--to', '${{ remainder }}']] }), deps({ exec: own.exec })).abort();
    expect(own.calls.map((c) => c.command)).toEqual([['gw', 'rollback', '--to', '100']]);
  });

  it('reads the weight in place with current, or verify when it needs no template, and says when it cannot', async () => {
    const cur = scriptedExec([{ stdout: ' 25 \n' }]);
    expect(await providerFor(config({ current: ['gw', 'get'] }), deps({ exec: cur.exec })).current()).toEqual({ weight: 25, remainderWeight: null });
    const ver = scriptedExec([{ stdout: '40' }]);
    expect(await providerFor(config({ verify: ['gw', 'show'] }), deps({ exec: ver.exec })).current()).toEqual({ weight: 40, remainderWeight: null });
    expect(ver.calls[0]?.command).toEqual(['gw', 'show']);
    const none = await providerError(providerFor(config({ verify: ['gw', 'is', '${{ weight }}'] }), deps()).current());
    expect(none.message).toBe(
      'command current: no `current` command (and `verify` uses ${{ }}): cannot read the weight in place; add current: [argv] that prints it',
    );
  });

  it('says when a command cannot start, is killed, or runs out of time', async () => {
    const missing = await providerError(providerFor(config(), deps({ exec: scriptedExec([{ exitCode: null, error: 'spawn gw ENOENT' }]).exec })).set(5, 1));
    expect(missing).toMatchObject({ failure: 'unreachable', message: 'command `gw canary 5`: `gw canary 5` could not run: spawn gw ENOENT' });
    const killed = await providerError(providerFor(config(), deps({ exec: scriptedExec([{ exitCode: null, signal: 'SIGKILL' }]).exec })).set(5, 1));
    expect(killed.message).toBe('command `gw canary 5`: `gw canary 5` killed by SIGKILL');
    const hung = await providerError(providerFor(config({ timeout: '1ms' }), deps({ exec: scriptedExec([{ hang: true }]).exec })).set(5, 1));
    expect(hung).toMatchObject({ failure: 'unreachable', message: 'command `gw canary 5`: `gw canary 5` did not finish within 1ms' });
  });
});

describe('engine provider (fake engine client)', () => {
  it('sets the admission weight and reads it back from health', async () => {
    let admission = 100;
    const calls: number[] = [];
    const engine = fakeClient({
      setAdmission: (w: number) => {
        calls.push(w);
        admission = w;
        return Promise.resolve({ admissionWeight: w });
      },
      health: () => Promise.resolve(health({ admissionWeight: admission })),
    });
    const p = providerFor({ type: 'engine' }, deps({ engine }));
    expect(await p.current()).toEqual({ weight: 100, remainderWeight: null });
    expect(await p.set(25, 1)).toEqual({ weight: 25, remainderWeight: null });
    expect(await p.abort()).toEqual({ weight: 0, remainderWeight: null });
    expect(calls).toEqual([25, 0]);
  });

  it('fails on a read-back that differs, an engine error, or no engine at all', async () => {
    const stuck = fakeClient({ setAdmission: () => Promise.resolve({ admissionWeight: 0 }), health: () => Promise.resolve(health({ admissionWeight: 0 })) });
    expect((await providerError(providerFor({ type: 'engine' }, deps({ engine: stuck })).set(25, 1))).message).toBe(
      'engine admission weight: set to 25, reads back 0',
    );
    const down = fakeClient({ setAdmission: () => Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:1')) });
    expect((await providerError(providerFor({ type: 'engine' }, deps({ engine: down })).set(25, 1))).message).toBe(
      'engine admission weight: connect ECONNREFUSED 127.0.0.1:1',
    );
    expect(() => providerFor({ type: 'engine' }, deps())).toThrow('engine admission weight: the engine provider needs the playbook engine');
  });
});
