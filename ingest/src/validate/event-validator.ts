import { eventSchema, type WingmanEvent } from '@wingman/shared';
import { Ajv } from 'ajv';
import { z } from 'zod';

/**
 * The shared zod event schema, compiled for the ingest hot path. zod stays the one source of
 * truth: the JSON Schema is generated from it at start (z.toJSONSchema, input side, so unknown
 * keys are allowed and ignored as zod does), and Ajv compiles that to a plain function that
 * answers yes or no about 10x faster than zod's safeParse (measured: 0.2–0.3 vs 2–5 µs per event),
 * without copying the event. `validateEvent` (plan-batch.ts) asks zod again only for an event
 * this rejects, for the readable DLQ reason, and zod's verdict is final. A property test keeps
 * the two verdicts equal (event-validator.test.ts).
 */
const ajv = new Ajv({
  // Jump to the union member named by `type` instead of trying all twelve (oneOf).
  discriminator: true,
  // String lengths: left at Ajv's default, code points, which is how zod 4's .min()/.max() count.
});

const jsonSchema = z.toJSONSchema(eventSchema, { io: 'input', target: 'draft-7' });

/**
 * True when `raw` is a valid event by the shared schema (zod would accept it). Ajv's discriminator
 * passes anything that is not an object, so the top level says object itself.
 */
export const isEvent = ajv.compile<WingmanEvent>({
  ...jsonSchema,
  type: 'object',
  discriminator: { propertyName: 'type' },
});
