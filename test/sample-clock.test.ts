import t from 'tap';
import { SampleClock } from '../daemon/capture/SampleClock.js';
import { prng } from './helpers/sealedRef.js';

const RATE = 8000;
const CHUNK = 160; // 20 ms reads
const WALL_OFFSET = 1_790_000_000_000; // wall = monotonic + this, in the simulation

interface Sim {
  clock: SampleClock;
  /** The true frame at monotonic time m (the card's crystal, running `ppm` slow or fast). */
  trueFrame(m: number): number;
  /** Feeds chunks until monotonic time `untilMs`. */
  run(untilMs: number): void;
}

/**
 * A card whose chunk k (its last frame captured at true time T_k) reaches the reader at T_k plus a
 * latency drawn by `latency(k)`, never less than zero: what CardReader sees, without a daemon.
 */
function simulate(latency: (k: number) => number, ppm = 0): Sim {
  const clock = new SampleClock(RATE);
  const msPerFrame = (1000 / RATE) * (1 + ppm * 1e-6);
  const captured = (k: number): number => (k + 1) * CHUNK * msPerFrame; // true time chunk k is complete
  let k = 0;
  let received = 0;
  return {
    clock,
    trueFrame: (m) => m / msPerFrame,
    run(untilMs) {
      while (captured(k) < untilMs) {
        const arrival = captured(k) + latency(k);
        received += CHUNK;
        if (!clock.isAnchored) clock.anchor(received, arrival, arrival + WALL_OFFSET);
        else clock.track(clock.deficit(received, arrival), arrival);
        k++;
      }
    },
  };
}

/** How far (ms) the clock's idea of the frame at monotonic `m` is from the truth. */
function errorMs(sim: Sim, m: number): number {
  return ((sim.clock.frameAt(m + WALL_OFFSET) - sim.trueFrame(m)) * 1000) / RATE;
}

t.test('a late first chunk does not skew the mapping: the soonest arrivals set it within a chunk or two', async (t) => {
  const rand = prng(7);
  // The anchoring chunk is 40 ms late (a daemon still starting); the rest 0.3..12 ms, as an event loop does.
  const sim = simulate((k) => (k === 0 ? 40 : 0.3 + rand() * 11.7));
  sim.run(21); // the anchoring chunk alone
  t.ok(errorMs(sim, 21) < -35, `before the others arrive the anchor's lateness shows (${errorMs(sim, 21).toFixed(1)} ms)`);
  for (const at of [100, 1000, 3000, 10_000, 60_000]) {
    sim.run(at);
    const e = errorMs(sim, at);
    // The mapping can only be as early as the soonest chunk: off by that chunk's latency (>= 0.3 ms) at most a little more.
    t.ok(e <= 0 && e > -1, `at ${at / 1000} s the mapping is ${e.toFixed(2)} ms from the card's true time`);
  }
});

t.test('a drift of 50 ppm either way is followed, late bursts do not move the mapping', async (t) => {
  for (const ppm of [50, -50]) {
    const rand = prng(11);
    // Every 30 s a stall of the event loop: 200 ms late, then the queued chunks in a burst.
    const sim = simulate((k) => {
      const stall = k % 1500;
      if (stall < 10) return 200 - stall * 20 + rand();
      return 0.3 + rand() * 11.7;
    }, ppm);
    let worst = 0;
    for (let at = 10_000; at <= 600_000; at += 10_000) {
      sim.run(at);
      worst = Math.max(worst, Math.abs(errorMs(sim, at)));
    }
    // 50 ppm is 30 ms over the 10 minutes: followed, the mapping stays within 1.5 ms of the truth.
    t.ok(worst < 1.5, `${ppm} ppm over 10 min: at most ${worst.toFixed(2)} ms off`);
  }
});

t.test('deficit tells audio missing from audio late', async (t) => {
  const sim = simulate(() => 1);
  sim.run(5000);
  const { clock } = sim;
  const m = 5000;
  const frames = Math.round(sim.trueFrame(m));
  t.ok(Math.abs(clock.deficit(frames, m)) < 16, `all audio in: deficit ${clock.deficit(frames, m).toFixed(1)} frames`);
  t.ok(Math.abs(clock.deficit(frames - 4000, m) - 4000) < 16, 'half a second missing: deficit about 4000 frames');
});
