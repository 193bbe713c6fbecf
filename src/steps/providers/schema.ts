/**
 * The `provider:` of traffic.shift: one strict object per gateway kind, discriminated by `type`. Zod only,
 * so that validate, plan and --help load it without any provider's code.
 */
import { z } from 'zod';
import { duration, patternOrExpr } from '../fields.js';

const ANY_TEMPLATE = /\$\{\{(.*?)\}\}/g;

const haproxyName = patternOrExpr(/^[A-Za-z0-9_.:-]+$/, 'expected a HAProxy name: letters, digits, _ . : -');
const socketAddress = patternOrExpr(
  /^(unix:\/\/\/[^\s;]+|tcp:\/\/[A-Za-z0-9.-]+:[0-9]{1,5}|tcp:\/\/\[[0-9A-Fa-f:.]+\]:[0-9]{1,5})$/,
  'expected unix:///path/to/admin.sock or tcp://host:port',
);
// Nothing that could end the `server` line or open a block in the rendered file.
const nginxAddress = patternOrExpr(/^[^\s;{}#'"\\]+$/, 'expected host:port or unix:/path, without spaces, quotes or ; { } #');
const nginxName = patternOrExpr(/^[A-Za-z0-9_.-]+$/, 'expected an upstream name: letters, digits, _ . -');
const nginxDirective = z.string().regex(/^[^;{}#\n]+$/, { error: 'one directive without its `;`, e.g. keepalive 32' });
const argv = z
  .array(z.string())
  .min(1)
  .refine((a) => (a[0] ?? '').trim() !== '', { error: 'the first element is the program, it cannot be empty' });

/** Every `${{ }}` in the argv is one of weight, remainder, stage. */
function onlyKnownTemplates(a: readonly string[]): boolean {
  return a.every((s) => [...s.matchAll(ANY_TEMPLATE)].every((m) => /^\s*(weight|remainder|stage)\s*$/.test(m[1] ?? '')));
}
const templatedArgv = argv.refine(onlyKnownTemplates, { error: 'only ${{ weight }}, ${{ remainder }} and ${{ stage }} can be filled in here' });

export const engineProvider = z
  .strictObject({
    type: z.literal('engine').describe("the bundled engine's own admission weight (the default)"),
  })
  .describe("the engine's admission weight: the canary is the engine itself, there is no remainder");

export const haproxyProvider = z
  .strictObject({
    type: z.literal('haproxy').describe('HAProxy, through its runtime API (the stats socket)'),
    socket: socketAddress.describe('the stats socket at level admin: unix:///run/haproxy/admin.sock or tcp://127.0.0.1:9999'),
    backend: haproxyName.describe('the backend that holds the canary, e.g. be_orders'),
    canary: haproxyName.describe('the server that gets weight W, e.g. engine'),
    remainder: haproxyName.optional().describe('the server that gets 100 - W, e.g. sorry (when absent only the canary weight changes)'),
    timeout: duration.default('5s').describe('how long one socket command may take'),
  })
  .refine((p) => p.remainder !== p.canary, { error: 'remainder must be another server than canary', path: ['remainder'] })
  .describe('HAProxy: `set server BACKEND/SERVER weight W` on the stats socket, read back with `show servers state`');

export const nginxProvider = z
  .strictObject({
    type: z.literal('nginx').describe('open-source nginx: the upstream file rewritten, tested and reloaded'),
    upstreamFile: z.string().min(1).describe('the file that holds the upstream block, rewritten whole (relative to the playbook)'),
    upstream: nginxName.describe('the upstream name, e.g. orders'),
    canary: nginxAddress.describe('the canary server address, e.g. 127.0.0.1:7070'),
    remainder: nginxAddress.optional().describe('the remainder server address, e.g. 127.0.0.1:7071'),
    directives: z.array(nginxDirective).optional().describe('other lines of the upstream block, e.g. [keepalive 32] (the file is rewritten whole)'),
    test: argv.default(['nginx', '-t']).describe('the command that checks the configuration (argv, never a shell)'),
    reload: argv.default(['nginx', '-s', 'reload']).describe('the command that makes nginx load it (argv, never a shell)'),
    timeout: duration.default('30s').describe('how long each of test and reload may take'),
  })
  .refine((p) => p.remainder !== p.canary, { error: 'remainder must be another address than canary', path: ['remainder'] })
  .describe('nginx: renders `upstream NAME { server CANARY weight=W; server REMAINDER weight=100-W; }`, runs test, then reload');

export const commandProvider = z
  .strictObject({
    type: z.literal('command').describe('any gateway, through commands you give (argv, never a shell)'),
    set: z
      .array(templatedArgv)
      .min(1)
      .describe('commands run in order at each stage; ${{ weight }}, ${{ remainder }} (100 - weight) and ${{ stage }} are filled in'),
    verify: templatedArgv.optional().describe('after set: a command whose stdout, trimmed, must be the weight'),
    abort: z.array(templatedArgv).min(1).optional().describe('commands that take the traffic back (default: set with weight 0, remainder 100)'),
    current: argv
      .refine((a) => !a.some((s) => s.includes('${{')), { error: 'current runs before any weight is known: it cannot use ${{ }}' })
      .optional()
      .describe('a command whose stdout, trimmed, is the weight in place now (used on a resume; default: verify, if it has no ${{ }})'),
    timeout: duration.default('30s').describe('how long each command may take'),
  })
  .describe('a command per stage, e.g. kubectl patch of an HTTPRoute');

export const trafficProvider = z
  .discriminatedUnion('type', [engineProvider, haproxyProvider, nginxProvider, commandProvider])
  .describe('what moves traffic between the canary and the remainder at each stage');

export type EngineProviderConfig = z.output<typeof engineProvider>;
export type HaproxyProviderConfig = z.output<typeof haproxyProvider>;
export type NginxProviderConfig = z.output<typeof nginxProvider>;
export type CommandProviderConfig = z.output<typeof commandProvider>;
export type TrafficProviderConfig = z.output<typeof trafficProvider>;
