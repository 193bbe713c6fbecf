import { userInfo } from 'node:os';
import type { ApprovalAnswer, Approver } from '../steps/types.js';

export interface PromptApproverOptions {
  yes: boolean;
  input: NodeJS.ReadStream;
  output: NodeJS.WriteStream;
  /** Stop and restart any spinner around the prompt. */
  pauseUi?: () => void;
  resumeUi?: () => void;
}

function who(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}

/** `--yes` approves; otherwise ask on the TTY; with neither, refuse without asking. */
export function promptApprover(o: PromptApproverOptions): Approver {
  return {
    async approve(message, signal): Promise<ApprovalAnswer> {
      if (o.yes) return { approved: true, by: '--yes' };
      if (!o.input.isTTY) {
        return { approved: false, by: 'none', unavailable: 'approval needed but there is no TTY to ask on: pass --yes to approve' };
      }
      const { createInterface } = await import('node:readline/promises');
      o.pauseUi?.();
      const rl = createInterface({ input: o.input, output: o.output, terminal: true });
      // The prompt puts the terminal in raw mode, so Ctrl-C arrives here: make it the run's interrupt.
      rl.on('SIGINT', () => process.kill(process.pid, 'SIGINT'));
      try {
        const answer = await rl.question(`? ${message} [y/N] `, { signal });
        const approved = /^(y|yes)$/i.test(answer.trim());
        return { approved, by: `tty:${who()}` };
      } finally {
        rl.close();
        o.resumeUi?.();
      }
    },
  };
}

/** Rehearsals answer every gate yes, and say so in the journal. */
export const rehearsalApprover: Approver = {
  approve: () => Promise.resolve({ approved: true, by: 'rehearsal' }),
};
