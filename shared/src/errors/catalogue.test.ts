import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TunnelCloseCode } from '../protocol/messages.ts';
import { VisitorErrors, visitorErrorBody } from './catalogue.ts';

const doc = readFileSync(join(import.meta.dirname, '../../../docs/errors.md'), 'utf8');

describe('error catalogue', () => {
  it.each(Object.entries(VisitorErrors))('docs/errors.md lists %s with its status', (code, { status }) => {
    expect(doc).toMatch(new RegExp(`\\|\\s*\`${code}\`\\s*\\|\\s*${status}\\s*\\|`));
  });

  it.each(Object.entries(TunnelCloseCode))('docs/errors.md lists close code %s (%i)', (name, code) => {
    expect(doc).toMatch(new RegExp(`\\|\\s*${code}\\s*\\|\\s*\`${name}\`\\s*\\|`));
  });

  it('renders a small JSON body with the code', () => {
    expect(JSON.parse(visitorErrorBody('LOCAL_TIMEOUT'))).toEqual({
      error: { code: 'LOCAL_TIMEOUT', message: VisitorErrors.LOCAL_TIMEOUT.message },
    });
  });
});
