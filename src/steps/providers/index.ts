/**
 * Traffic providers for traffic.shift: `providerFor` builds the one a playbook's `provider:` names.
 * docs/traffic-providers.md is the operator's side of this contract.
 */
import { CommandProvider } from './command.js';
import { EngineProvider } from './engine.js';
import { HaproxyProvider } from './haproxy.js';
import { NginxProvider } from './nginx.js';
import type { TrafficProviderConfig } from './schema.js';
import { ProviderError, type ProviderDeps, type TrafficProvider } from './types.js';

export * from './schema.js';
export * from './types.js';

/** The provider for a playbook's `provider:` (`{ type: 'engine' }` when it has none). Builds only; nothing is asked yet. */
export function providerFor(config: TrafficProviderConfig, deps: ProviderDeps): TrafficProvider {
  switch (config.type) {
    case 'engine':
      if (!deps.engine) throw new ProviderError('engine', 'admission weight', 'not-found', 'the engine provider needs the playbook engine');
      return new EngineProvider(deps.engine, deps);
    case 'haproxy':
      return new HaproxyProvider(config, deps);
    case 'nginx':
      return new NginxProvider(config, deps);
    case 'command':
      return new CommandProvider(config, deps);
  }
}

/** The gateway object a provider drives, in a few words for the plan. */
export function describeProvider(config: TrafficProviderConfig): string {
  switch (config.type) {
    case 'engine':
      return 'the engine admission weight';
    case 'haproxy':
      return `haproxy ${config.backend}/${config.canary}${config.remainder ? ` (remainder ${config.remainder})` : ''} on ${config.socket}`;
    case 'nginx':
      return `nginx upstream ${config.upstream} in ${config.upstreamFile}`;
    case 'command':
      return `${config.set.length} command${config.set.length === 1 ? '' : 's'} (${config.set.map((c) => c[0]).join(', ')})`;
  }
}
