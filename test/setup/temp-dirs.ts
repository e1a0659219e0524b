import { afterAll } from 'vitest';
import { removeTempDirs } from '../helpers/temp-dir.ts';

// Registered before each test file's own hooks, so it runs after them (after hooks run in
// reverse): the file's processes are stopped before their directories go.
afterAll(removeTempDirs);
