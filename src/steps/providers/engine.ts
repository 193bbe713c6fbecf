/** The default provider: the bundled engine's own admission weight (what traffic.shift always did). */
import { errorMessage } from '../types.js';
import { ProviderError, oneLine, type EngineAdmission, type ProviderDeps, type TrafficProvider, type TrafficWeights } from './types.js';

const TARGET = 'admission weight';

export class EngineProvider implements TrafficProvider {
  readonly type = 'engine';

  constructor(
    private readonly engine: EngineAdmission,
    private readonly deps: Pick<ProviderDeps, 'signal'>,
  ) {}

  async current(): Promise<TrafficWeights> {
    return { weight: await this.read(), remainderWeight: null };
  }

  async set(weight: number): Promise<TrafficWeights> {
    await this.call(() => this.engine.setAdmission(weight));
    const now = await this.read();
    if (now !== weight) throw new ProviderError('engine', TARGET, 'mismatch', `set to ${weight}, reads back ${now}`);
    return { weight: now, remainderWeight: null };
  }

  abort(): Promise<TrafficWeights> {
    return this.set(0);
  }

  private async read(): Promise<number> {
    return (await this.call(() => this.engine.health())).admissionWeight;
  }

  private async call<T>(f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      if (this.deps.signal.aborted) throw this.deps.signal.reason;
      throw new ProviderError('engine', TARGET, 'failed', oneLine(errorMessage(e)));
    }
  }
}
