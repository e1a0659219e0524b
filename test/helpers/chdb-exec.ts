// Child process for tests: run one SQL statement against a chDB directory and print the result.
import { createClient } from '@clickhouse/client';
import { createChdbConnection } from 'chdb/connection';

const [path, query] = process.argv.slice(2);
const client = createClient({ connection: createChdbConnection({ path: path! }) } as Parameters<
  typeof createClient
>[0]);
const result = await client.exec({ query: query! });
for await (const chunk of result.stream) process.stdout.write(chunk as Buffer);
await client.close();
