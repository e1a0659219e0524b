/**
 * Visitor-facing errors. Each code maps to exactly one HTTP status, here and
 * nowhere else. docs/errors.md lists every code; a test keeps it complete.
 */
export const VisitorErrors = {
  BAD_SESSION_ID: { status: 400, message: 'Malformed session id: ids match ^[a-zA-Z0-9]{8,32}$.' },
  NOT_FOUND: { status: 404, message: 'No such route on this relay.' },
  SESSION_NOT_FOUND: { status: 404, message: 'No tunnel session with this id.' },
  METHOD_NOT_ALLOWED: { status: 405, message: 'CONNECT is not carried through a tunnel.' },
  SESSION_EXPIRED: { status: 410, message: 'This tunnel session has ended.' },
  BODY_TOO_LARGE: { status: 413, message: 'Request body exceeds the relay limit.' },
  HEADERS_TOO_LARGE: { status: 431, message: 'Request headers exceed the relay limit.' },
  CLIENT_GONE: { status: 502, message: 'The tunnel client is not connected.' },
  LOCAL_UNREACHABLE: { status: 502, message: 'The tunnel client could not reach the local app.' },
  BAD_UPSTREAM_RESPONSE: { status: 502, message: 'The tunnel client sent an invalid response.' },
  STREAM_RESET: { status: 502, message: 'The tunnel client aborted this request.' },
  DRAINING: { status: 503, message: 'The relay is shutting down; retry shortly.' },
  STREAM_LIMIT: { status: 503, message: 'Too many concurrent requests on this tunnel.' },
  LOCAL_TIMEOUT: { status: 504, message: 'The local app did not answer in time.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type VisitorErrorCode = keyof typeof VisitorErrors;

export const STATUS_TEXT: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  404: 'Not Found',
  405: 'Method Not Allowed',
  410: 'Gone',
  413: 'Payload Too Large',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** A small JSON body for an error answer: `{"error":{"code","message"}}`. */
export function visitorErrorBody(code: VisitorErrorCode): string {
  return JSON.stringify({ error: { code, message: VisitorErrors[code].message } });
}

/** Base class for typed errors with a stable code and an optional cause. */
export class WingmanError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'WingmanError';
  }
}
