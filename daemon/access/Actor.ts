import type { Role } from './permissions.js';

/** Who is asking, as the services see it: a logged-in person, through one of the two doors. */
export interface Actor {
  userId: string;
  username: string;
  roles: Role[];
  /** The PBX adviser id an agent account is linked to (its own calls are those with this adviser id). */
  agentId: string | null;
  via: 'api' | 'cli';
  /** Where from: the client's IP address (API) or `uid:N` of the socket's peer (CLI). */
  from: string;
  /** The session's id (a hash prefix, never the token): ties audit entries of one sitting together. */
  sessionId: string;
}
