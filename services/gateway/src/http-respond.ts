import type { HttpResponse } from './uws.js';

export interface HttpAnswer {
  status: number;
  body: string;
  contentType?: string;
  headers?: Record<string, string>;
}

const STATUS_TEXT: Record<number, string> = {
  200: '200 OK',
  400: '400 Bad Request',
  403: '403 Forbidden',
  404: '404 Not Found',
  405: '405 Method Not Allowed',
  500: '500 Internal Server Error',
  503: '503 Service Unavailable',
};

export const json = (status: number, value: unknown): HttpAnswer => ({
  status,
  body: JSON.stringify(value),
  contentType: 'application/json',
});

function write(res: HttpResponse, answer: HttpAnswer): void {
  res.writeStatus(STATUS_TEXT[answer.status] ?? `${answer.status} Unknown`);
  res.writeHeader('Content-Type', answer.contentType ?? 'text/plain; charset=utf-8');
  res.writeHeader('Cache-Control', 'no-store');
  for (const [name, value] of Object.entries(answer.headers ?? {})) res.writeHeader(name, value);
  res.end(answer.body);
}

/**
 * Answers a uWS request from async work. uWS requires onAborted before any await, and cork
 * around writes that happen outside its callback.
 */
export function respond(
  res: HttpResponse,
  work: () => HttpAnswer | Promise<HttpAnswer>,
  onError: (error: unknown) => void,
): void {
  let aborted = false;
  res.onAborted(() => {
    aborted = true;
  });
  void Promise.resolve()
    .then(work)
    .catch((error: unknown): HttpAnswer => {
      onError(error);
      return json(500, { error: 'internal', message: 'internal error' });
    })
    .then((answer) => {
      if (!aborted) res.cork(() => write(res, answer));
    });
}
