import { UsageError } from './usage.js';

/** A password from a terminal, not echoed; Ctrl-C aborts. Only called when stdin is a TTY. */
export function promptSecret(question: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(question);
  return new Promise((resolve, reject) => {
    let value = '';
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding('utf8');
    const done = (err?: Error): void => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (chunk: string): void => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003') return done(new Error('cancelled'));
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else if (ch >= ' ') value += ch;
      }
    };
    stdin.on('data', onData);
  });
}

/** A line from a terminal, echoed (a user name). */
export async function promptLine(question: string): Promise<string> {
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return (await rl.question(question)).trim();
  } finally {
    rl.close();
  }
}

/** All of stdin (for --password-stdin), without its one trailing newline. */
export async function readStdin(): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of process.stdin) parts.push(c as Buffer);
  return Buffer.concat(parts).toString('utf8').replace(/\r?\n$/, '');
}

/** The current password, from the terminal only. */
export async function secretFromTty(question: string): Promise<string> {
  if (!process.stdin.isTTY) throw new UsageError('stdin is not a terminal: use --password-stdin');
  return promptSecret(question);
}

/** A new password, typed twice on a terminal. */
export async function newPassword(): Promise<string> {
  const a = await secretFromTty('new password: ');
  const b = await promptSecret('again: ');
  if (a !== b) throw new UsageError('the two passwords differ');
  return a;
}
