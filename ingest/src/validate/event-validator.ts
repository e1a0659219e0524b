import { eventSchema, type WingmanEvent } from '@wingman/shared';
import { Ajv } from 'ajv';
import { z } from 'zod';

/**
 * The shared zod event schema, compiled for the ingest hot path. zod stays the one source of
 * truth: the JSON Schema is generated from it at start (z.toJSONSchema, input side, so unknown
 * keys are allowed and ignored as zod does), and Ajv compiles that to a plain function that
 * answers yes or no about 10x faster than zod's safeParse (measured: ~0.5 vs ~5 µs per event),
 * without copying the event. `validateEvent` (plan-batch.ts) asks zod again only for an event
 * this rejects, for the readable DLQ reason, and zod's verdict is final. A property test keeps
 * the two verdicts equal (event-validator.test.ts).
 */
const ajv = new Ajv({
  // Jump to the union member named by `type` instead of trying all twelve (oneOf).
  discriminator: true,
  // String lengths: Ajv counts code points by default, as zod 4's .min()/.max() do.
});

const jsonSchema = z.toJSONSchema(eventSchema, { io: 'input', target: 'draft-7' });

// Ajv's discriminator passes anything that is not an object, so the top level says object itself.
const isEventFn = ajv.compile({ ...jsonSchema, type: 'object', discriminator: { propertyName: 'type' } });

/** True when `raw` is a valid event by the shared schema (zod would accept it). */
export function isEvent(raw: unknown): raw is WingmanEvent {
  return isEventFn(raw) === true;
}
