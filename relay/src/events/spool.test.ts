import { existsSync, mkdirSync, readdirSync, rmdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../../test/helpers/temp-dir.ts';
import { Spool, SpoolWriteError } from './spool.ts';

const dir = () => tempDir('wingman-spool-');

function drain(s: Spool): string[] {
  const out: string[] = [];
  for (let r = s.peek(); r !== undefined; r = s.peek()) {
    out.push(r);
    s.ack();
  }
  return out;
}

describe('Spool', () => {
  it('replays records in order across segment files and deletes published segments', () => {
    const d = dir();
    const s = new Spool(d, 1024 * 1024, 100);
    const records = Array.from({ length: 50 }, (_, i) => JSON.stringify({ i, pad: 'x'.repeat(i % 7) }));
    for (const r of records) expect(s.append(r)).toBe(true);
    expect(readdirSync(d).length).toBeGreaterThan(5);
    expect(s.bytes).toBeGreaterThan(0);
    expect(drain(s)).toEqual(records);
    expect(s.isEmpty).toBe(true);
    expect(s.bytes).toBe(0);
    expect(readdirSync(d)).toEqual([]);
    s.close();
  });

  it('prepare() reads each segment ahead, off the event loop, the one being written included', async () => {
    const d = dir();
    const s = new Spool(d, 1024 * 1024, 16); // 4-byte lines: four per segment
    for (const r of ['a1', 'a2', 'a3', 'a4', 'b1', 'b2', 'b3']) s.append(r);
    const [first, tail, ...none] = readdirSync(d).sort();
    expect(none).toEqual([]);
    await s.prepare();
    // Loaded: peek() answers from memory, not from the file (overwritten here to tell them apart).
    writeFileSync(join(d, first!), '0zz\n');
    expect(s.peek()).toBe('a1');
    while (s.peek()?.startsWith('a')) s.ack();
    // The tail segment, still open for appends, is loaded the same way; a later append joins it.
    await s.prepare();
    writeFileSync(join(d, tail!), '0zz\n');
    s.append('b4');
    expect(drain(s)).toEqual(['b1', 'b2', 'b3', 'b4']);
    s.close();
  });

  it('records appended while prepare() reads their segment are neither lost nor repeated', async () => {
    const s = new Spool(dir(), 1024 * 1024, 10_000);
    for (const r of ['a', 'b']) s.append(r);
    const reading = s.prepare();
    s.append('c');
    s.append('d');
    await reading;
    s.append('e');
    expect(drain(s)).toEqual(['a', 'b', 'c', 'd', 'e']);
    s.close();
  });

  it('a peek() while prepare() is reading loads the segment itself; nothing is lost or repeated', async () => {
    const s = new Spool(dir(), 1024 * 1024, 10_000);
    s.append('a');
    const reading = s.prepare();
    s.append('b');
    expect(s.peek()).toBe('a');
    s.append('c');
    await reading;
    s.append('d');
    expect(drain(s)).toEqual(['a', 'b', 'c', 'd']);
    s.close();
  });

  it('keeps order when records are appended while the oldest segment is being read', () => {
    const s = new Spool(dir(), 1024 * 1024, 10_000);
    s.append('a');
    s.append('b');
    expect(s.peek()).toBe('a');
    s.ack();
    s.append('c');
    expect(drain(s)).toEqual(['b', 'c']);
    s.close();
  });

  it('survives a restart: records on disk are replayed by the next process', () => {
    const d = dir();
    const first = new Spool(d, 1024 * 1024, 64);
    for (let i = 0; i < 20; i++) first.append(`r${i}`);
    expect(first.peek()).toBe('r0');
    first.ack();
    first.close();
    const second = new Spool(d, 1024 * 1024, 64);
    // The cursor is not persisted: a partly published segment is replayed whole (dedup downstream).
    const replayed = drain(second);
    expect(replayed.at(-1)).toBe('r19');
    expect(replayed.filter((r) => r !== 'r0')).toEqual(Array.from({ length: 19 }, (_, i) => `r${i + 1}`));
    second.close();
  });

  it('knows which records may already be published: flagged ones, and everything inherited from a previous process', () => {
    const d = dir();
    const first = new Spool(d, 1024 * 1024, 10_000);
    first.append('fresh');
    first.append('attempted', true);
    expect(first.peek()).toBe('fresh');
    expect(first.headMaybePublished).toBe(false);
    first.ack();
    expect(first.peek()).toBe('attempted');
    expect(first.headMaybePublished).toBe(true);
    first.append('later');
    first.close();
    const second = new Spool(d, 1024 * 1024, 10_000);
    second.append('new-after-restart');
    const seen: [string, boolean][] = [];
    for (let r = second.peek(); r !== undefined; r = second.peek()) {
      seen.push([r, second.headMaybePublished]);
      second.ack();
    }
    // The segment left on disk replays whole and counts as possibly published; this process's own appends
    // went to a new segment.
    expect(seen).toEqual([
      ['fresh', true],
      ['attempted', true],
      ['later', true],
      ['new-after-restart', false],
    ]);
    second.close();
  });

  it('refuses records once full, without writing a partial record', () => {
    const s = new Spool(dir(), 30, 1000);
    expect(s.append('0123456789')).toBe(true);
    expect(s.append('0123456789')).toBe(true);
    expect(s.append('0123456789')).toBe(false);
    // Each line: a one-byte flag, the record, a newline.
    expect(s.bytes).toBe(24);
    expect(drain(s)).toEqual(['0123456789', '0123456789']);
    s.close();
  });

  it('writes byte parts as they are: records of text and UTF-8 bytes read back as the same text', () => {
    const s = new Spool(dir(), 1024 * 1024, 10_000);
    const envelope = '{"ua":"é 😀 \\u2028 \\"q\\""}';
    expect(s.append(['1 3 abc', Buffer.from(envelope)])).toBe(true);
    // Each line: a one-byte flag, the record's bytes, a newline.
    expect(s.bytes).toBe(1 + Buffer.byteLength(`1 3 abc${envelope}`) + 1);
    expect(s.peek()).toBe(`1 3 abc${envelope}`);
    // Appended while its segment is being read: the in-memory view gets the same text.
    s.append([Buffer.from('ü'), 'x']);
    s.ack();
    expect(drain(s)).toEqual(['üx']);
    s.close();
  });

  it('a write the disk refuses throws SpoolWriteError and leaves the spool as it was', () => {
    if (!existsSync('/dev/full')) throw new Error('this test needs /dev/full (Linux)');
    const d = dir();
    const s = new Spool(d, 1024 * 1024, 10_000);
    // The first segment's file is /dev/full: every write to it fails with ENOSPC.
    symlinkSync('/dev/full', join(d, '0000000001.seg'));
    expect(() => s.append('lost')).toThrow(SpoolWriteError);
    expect(() => s.append(['lost', Buffer.from('too')])).toThrow(/ENOSPC/);
    expect(s.bytes).toBe(0);
    s.close();
  });

  it('a segment that cannot be opened throws SpoolWriteError, changes nothing, and the next append tries again', () => {
    const d = dir();
    const s = new Spool(d, 1024 * 1024, 10_000);
    // A directory where the first segment file would go: opening it for append fails (EISDIR).
    mkdirSync(join(d, '0000000001.seg'));
    expect(() => s.append('lost')).toThrow(/segment open failed/);
    expect(s.isEmpty).toBe(true);
    expect(s.bytes).toBe(0);
    rmdirSync(join(d, '0000000001.seg'));
    expect(s.append('kept')).toBe(true);
    expect(drain(s)).toEqual(['kept']);
    s.close();
  });
});
