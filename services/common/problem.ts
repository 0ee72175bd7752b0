/**
 * RFC 9457 problem details: the one writer of `application/problem+json`
 * bodies, for the web's Koa middleware, the web's HTTP server (answers it
 * writes before Koa sees the request) and the worker's health server.
 */
import type { ServerResponse } from 'node:http';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** What a problem says. `instance`, `request_id` and `errors` are left out when not given. */
export interface Problem {
  status: number;
  title: string;
  detail: string;
  /** The path the problem is about. */
  instance?: string;
  /** The request id the logs carry. */
  request_id?: string;
  /** Per-field errors (400 of an invalid form). */
  errors?: readonly unknown[];
}

/** The body of a problem, fields in a fixed order; `type` is always `about:blank`. */
export function problemBody(problem: Problem): Record<string, unknown> {
  const { status, title, detail, instance, request_id, errors } = problem;
  return {
    type: 'about:blank',
    title,
    status,
    detail,
    ...(instance !== undefined ? { instance } : {}),
    ...(request_id !== undefined ? { request_id } : {}),
    ...(errors !== undefined ? { errors } : {}),
  };
}

/** Answers a Node HTTP response with a problem, closing the connection when `close`. */
export function writeProblem(res: ServerResponse, problem: Problem, options: { close?: boolean } = {}): void {
  const body = JSON.stringify(problemBody(problem));
  res.writeHead(problem.status, {
    'Content-Type': PROBLEM_CONTENT_TYPE,
    'Content-Length': Buffer.byteLength(body),
    ...(options.close ? { Connection: 'close' } : {}),
  });
  res.end(body);
}

/** A whole HTTP/1.1 problem response with `Connection: close`, for sockets that have no ServerResponse. */
export function rawProblemResponse(problem: Problem, headers: Readonly<Record<string, string>> = {}): string {
  const body = JSON.stringify(problemBody(problem));
  const extra = Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  const head = `HTTP/1.1 ${problem.status} ${problem.title}\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}\r\n`;
  return `${head}Content-Length: ${Buffer.byteLength(body)}\r\n${extra}Connection: close\r\n\r\n${body}`;
}
