import { describe, expect, it } from 'vitest';
import { leaveIdleDenied } from './sched.ts';

// /proc/self/status and /proc/self/limits as the kernel writes them (proc(5)), trimmed.
const status = (capEff: string) =>
  `Name:\tnode\nCapInh:\t0000000000000000\nCapEff:\t${capEff}\nCapBnd:\t${capEff}\n`;
const limits = (soft: string, hard = soft) =>
  `Limit                     Soft Limit           Hard Limit           Units     \nMax nice priority         ${soft.padEnd(20)} ${hard.padEnd(20)}                    \nMax realtime priority     0                    0                    \n`;

describe('leaveIdleDenied: may a SCHED_IDLE thread be raised again?', () => {
  it('yes with CAP_SYS_NICE (bit 23 of CapEff), whatever RLIMIT_NICE is', () => {
    expect(leaveIdleDenied(status('000001ffffffffff'), limits('0'))).toBeUndefined();
    expect(leaveIdleDenied(status('0000000000800000'), limits('0'))).toBeUndefined();
  });
  it('yes without it when RLIMIT_NICE is at least 20 (nice 0 allowed) or unlimited', () => {
    expect(leaveIdleDenied(status('000001fffe7fffff'), limits('20'))).toBeUndefined();
    expect(leaveIdleDenied(status('0000000000000000'), limits('40'))).toBeUndefined();
    expect(leaveIdleDenied(status('0000000000000000'), limits('unlimited'))).toBeUndefined();
  });
  it('no without CAP_SYS_NICE and with RLIMIT_NICE below 20, and says why', () => {
    expect(leaveIdleDenied(status('000001fffe7fffff'), limits('0'))).toBe(
      'no CAP_SYS_NICE and RLIMIT_NICE is 0 (needs 20)',
    );
    expect(leaveIdleDenied(status('0000000000000000'), limits('19', '40'))).toBe(
      'no CAP_SYS_NICE and RLIMIT_NICE is 19 (needs 20)',
    );
    expect(leaveIdleDenied('', '')).toBe('no CAP_SYS_NICE and RLIMIT_NICE is unknown (needs 20)');
  });
});
