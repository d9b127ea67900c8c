/**
 * The control socket's protocol: one JSON object per line each way. A request names a method; the
 * answer carries the same `id` and either a result or an error with a stable code.
 */
export interface ControlRequest {
  id: number;
  method: string;
  params: Record<string, unknown>;
  /** The session token from `callrec login` (every method but `session.login` and `users.bootstrap` needs one). */
  session?: string;
}

export type ControlResponse =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: { code: string; message: string } };
