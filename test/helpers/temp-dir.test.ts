import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

describe('tempDir', () => {
  it('removes each directory it made, files and all, when the process exits', () => {
    // A real child process: the removal happens on its exit, which this test process cannot do to itself.
    const script = `
      import { mkdirSync, writeFileSync } from 'node:fs';
      import { tempDir } from './test/helpers/temp-dir.ts';
      const a = tempDir('wingman-tempdir-test-');
      const b = tempDir('wingman-tempdir-test-');
      mkdirSync(a + '/nested');
      writeFileSync(a + '/nested/file', 'x');
      writeFileSync(b + '/file', 'y');
      console.log(JSON.stringify([a, b]));
    `;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      encoding: 'utf8',
    });
    const dirs = JSON.parse(out) as string[];
    expect(dirs).toHaveLength(2);
    expect(dirs[0]).not.toBe(dirs[1]);
    for (const d of dirs) expect(existsSync(d)).toBe(false);
  });
});
