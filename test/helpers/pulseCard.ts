import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const SCRIPT = fileURLToPath(new URL('../../../scripts/virtual-card-pulse.sh', import.meta.url));
const PACKAGES = 'pulseaudio pulseaudio-utils libasound2-plugins';
const PLUGIN = 'libasound_module_pcm_pulse.so';
const PLUGIN_DIRS = ['/usr/lib/x86_64-linux-gnu/alsa-lib', '/usr/lib/aarch64-linux-gnu/alsa-lib', '/usr/lib64/alsa-lib', '/usr/lib/alsa-lib'];

export interface PulseCard {
  /** PortAudio device name of the card. */
  readonly device: string;
  readonly lines: number;
  readonly sampleRate: number;
  /** Plays a WAV file into line K (0-based); the child exits when the file ends. */
  play(line: number, file: string): ChildProcess;
  /** Kills PulseAudio at once, as a card that disappears mid-capture. */
  crash(): void;
  /** Stops the players and PulseAudio, restores HOME/XDG_RUNTIME_DIR; idempotent. */
  stop(): Promise<void>;
}

/** Throws (so the test fails, not skips) when the machine lacks what the virtual card needs. */
export function checkPulsePrerequisites(): void {
  const onPath = (cmd: string) => (process.env.PATH ?? '').split(delimiter).some((d) => d && existsSync(join(d, cmd)));
  const missing = ['pulseaudio', 'pactl', 'paplay'].filter((c) => !onPath(c));
  if (!PLUGIN_DIRS.some((d) => existsSync(join(d, PLUGIN)))) missing.push(`ALSA pulse plugin (${PLUGIN})`);
  if (missing.length) {
    throw new Error(`PulseAudio virtual card needs ${missing.join(', ')}: apt-get install -y --no-install-recommends ${PACKAGES}`);
  }
}

/**
 * Starts a PulseAudio virtual card (scripts/virtual-card-pulse.sh) private to this test. ALSA reads
 * ~/.asoundrc and the pulse plugin finds the server through XDG_RUNTIME_DIR, both when PortAudio lists
 * devices and when it opens a stream, so this process's HOME and XDG_RUNTIME_DIR point at the card until
 * stop(). PortAudio keeps ALSA's parsed config while initialised: start the card before the first
 * getDevices() of the process. Stop every capture stream before stop(): a stream whose server is gone
 * parks a threadpool thread for good and the process cannot exit. PulseAudio buffers a stalled reader
 * (~4 MB: 32 s at 8 lines, 8 kHz), so this card cannot show audio lost to a full naudiodon queue.
 */
export async function startPulseCard(lines: number, sampleRate: number): Promise<PulseCard> {
  checkPulsePrerequisites();
  const dir = mkdtempSync(join(tmpdir(), 'callrec-pulse-'));
  const env = { ...process.env, HOME: dir, XDG_RUNTIME_DIR: join(dir, 'run') };
  const saved = { HOME: process.env.HOME, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR };
  // If the test process dies without stop(), do not leave PulseAudio running.
  const onExit = () => void execFileSync(SCRIPT, ['stop', dir], { stdio: 'ignore' });
  try {
    await promisify(execFile)(SCRIPT, ['start', dir, String(lines), String(sampleRate)], { env });
  } catch (err) {
    onExit();
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`virtual card did not start (see the script's pulse.log): ${String(err)}`);
  }
  const pid = Number(readFileSync(join(dir, 'pulse.pid'), 'utf8'));
  process.once('exit', onExit);
  process.env.HOME = env.HOME;
  process.env.XDG_RUNTIME_DIR = env.XDG_RUNTIME_DIR;
  const players = new Set<ChildProcess>();
  let stopped: Promise<void> | null = null;

  async function stop(): Promise<void> {
    for (const p of players) if (p.exitCode === null && p.signalCode === null) p.kill();
    process.removeListener('exit', onExit);
    await promisify(execFile)(SCRIPT, ['stop', dir]);
    for (let i = 0; i < 50 && alive(pid); i++) await new Promise((r) => setTimeout(r, 40));
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    rmSync(dir, { recursive: true, force: true });
  }

  return {
    device: 'callrec_card',
    lines,
    sampleRate,
    play(line, file) {
      if (!Number.isInteger(line) || line < 0 || line >= lines) throw new Error(`no line ${line} on a ${lines}-line card`);
      // stdout ignored: the test's stdout is the TAP stream.
      const p = spawn('paplay', [`--device=line${line}`, file], { env, stdio: ['ignore', 'ignore', 'inherit'] });
      players.add(p);
      p.once('exit', () => players.delete(p));
      return p;
    },
    crash: () => void (alive(pid) && process.kill(pid, 'SIGKILL')),
    stop: () => (stopped ??= stop()),
  };
}

/** A zombie (not yet reaped by its new parent) counts as gone. */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
