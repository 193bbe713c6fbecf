import { describe, expect, it } from 'vitest';
// @ts-expect-error plain JavaScript drills, shared with `npm run drills`
import { badHotfix } from './drills/hotfix.mjs';
// @ts-expect-error plain JavaScript drills
import { crashResume } from './drills/crash.mjs';
// @ts-expect-error plain JavaScript drills
import { engineKill } from './drills/engine-kill.mjs';
// @ts-expect-error plain JavaScript drills
import { overload } from './drills/load.mjs';
// @ts-expect-error plain JavaScript drills
import { apiFuzz, playbookFuzz, snapshotFuzz } from './drills/fuzz.mjs';
// @ts-expect-error plain JavaScript drills
import { journalPowerLoss, walPowerLoss } from './drills/powerloss.mjs';
// @ts-expect-error plain JavaScript drills
import { switchover } from './drills/switchover.mjs';

interface Drill {
  name: string;
  trials(long: boolean): number;
  run(trials: number, seed: number): Promise<{ trials: number; passed: number; lost: number; detail: string; failures: string[] }>;
}

const drills = [playbookFuzz, snapshotFuzz, apiFuzz, walPowerLoss, journalPowerLoss, badHotfix, crashResume, engineKill, switchover, overload] as Drill[];

describe('drills (the CI-sized set of `npm run drills`)', () => {
  it.each(drills.map((d) => [d.name, d] as const))(
    '%s: every trial passes, nothing lost',
    async (_name, drill) => {
      const r = await drill.run(drill.trials(false), 2026);
      expect(r.failures.slice(0, 5)).toEqual([]);
      expect(r.passed).toBe(r.trials);
      expect(r.lost).toBe(0);
    },
    600_000,
  );
});
