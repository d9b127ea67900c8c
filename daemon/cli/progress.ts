/** A one-line progress meter on a terminal's stderr; silent when stderr is not a terminal. */
export function progressMeter(label: string): { update(done: number, total: number): void; end(): void } {
  const tty = process.stderr.isTTY === true;
  let last = 0;
  return {
    update(done, total) {
      if (!tty) return;
      const now = Date.now();
      if (done < total && now - last < 100) return;
      last = now;
      process.stderr.write(`\r${label}: ${done}/${total} (${total ? Math.floor((done * 100) / total) : 100}%)`);
    },
    end() {
      if (tty) process.stderr.write('\n');
    },
  };
}
