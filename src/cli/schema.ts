import { playbookJsonSchema } from '../playbook/schema.js';

export function schemaCommand(): void {
  process.stdout.write(`${JSON.stringify(playbookJsonSchema(), null, 2)}\n`);
}
