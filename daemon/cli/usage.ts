/** Exit codes (a contract): 0 ok, 1 failure, 2 usage, 3 not logged in, 4 not found. */
export const EXIT = { ok: 0, failure: 1, usage: 2, notLoggedIn: 3, notFound: 4 } as const;

/** A command line that cannot be right: exit 2 with the usage text. */
export class UsageError extends Error {}
