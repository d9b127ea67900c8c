import { isIP } from 'node:net';
import { hostname } from 'node:os';
import type { NextFunction, Request, Response } from 'express';

/**
 * Refuses a request whose Host names a host this listener is not (421): a page that rebinds its own DNS
 * name to the appliance's address (DNS rebinding) would otherwise be "same origin" with it. IP
 * literals, localhost, this machine's host name and the configured names pass.
 */
export function knownHost(names: string[]) {
  const known = new Set(['localhost', hostname().toLowerCase(), ...names.map((n) => n.toLowerCase())]);
  return (req: Request, res: Response, next: NextFunction): void => {
    const host = (req.get('host') ?? '').toLowerCase();
    const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d+$/, '');
    if (isIP(name) !== 0 || known.has(name) || known.has(name.replace(/\.$/, ''))) return next();
    res.status(421).json({ error: { code: 'unknown_host', message: `this listener does not answer to ${JSON.stringify(name.slice(0, 64))}: add it to admin.hostNames` } });
  };
}
