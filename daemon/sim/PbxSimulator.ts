import { randomInt, randomUUID } from 'node:crypto';

export interface SimulatedCall {
  callId: string;
  line: string;
  caller: string;
  callerPresentation: 'allowed' | 'restricted' | 'unavailable';
  serviceNumber: string;
  agent: { id: string; name: string };
}

export interface PbxSimulatorOptions {
  url: string;
  token: string;
  lines: string[];
  /** A new call is placed every this many ms (with jitter) while a line is free. */
  intervalMs?: number;
  /** Call length range in ms. */
  minCallMs?: number;
  maxCallMs?: number;
  onEvent?: (type: string, call: SimulatedCall, answer: unknown) => void;
}

const ADVISERS = [
  { id: 'aino.virtanen', name: 'Aino Virtanen' },
  { id: 'mikko.korhonen', name: 'Mikko Korhonen' },
  { id: 'liisa.makinen', name: 'Liisa Mäkinen' },
  { id: 'juha.nieminen', name: 'Juha Nieminen' },
  { id: 'elina.hamalainen', name: 'Elina Hämäläinen' },
  { id: 'timo.laine', name: 'Timo Laine' },
];
const SERVICE_NUMBERS = ['029 497 002', '029 497 012', '029 497 050'];

/** A caller as a Finnish PBX would pass it: mobile or landline, national or international, sometimes withheld. */
function randomCaller(): Pick<SimulatedCall, 'caller' | 'callerPresentation'> {
  const r = randomInt(100);
  const digits = (n: number): string => Array.from({ length: n }, () => randomInt(10)).join('');
  if (r < 8) return { caller: '', callerPresentation: 'restricted' };
  if (r < 40) return { caller: `+358 40 ${digits(3)} ${digits(4)}`, callerPresentation: 'allowed' };
  if (r < 65) return { caller: `050${digits(7)}`, callerPresentation: 'allowed' };
  if (r < 85) return { caller: `+35844${digits(7)}`, callerPresentation: 'allowed' };
  return { caller: `09 ${digits(7)}`, callerPresentation: 'allowed' };
}

/**
 * A stand-in PBX for the demo: places overlapping calls on free lines and sends their signals over the
 * real protocol (HTTP, bearer token): start, answer a few seconds later, end.
 */
export class PbxSimulator {
  private readonly busy = new Set<string>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private running = false;

  constructor(private readonly opts: PbxSimulatorOptions) {}

  start(): void {
    this.running = true;
    this.schedule(300, () => this.placeCall());
  }

  /** Stops placing calls; calls in progress get their end signal now. */
  async stop(): Promise<void> {
    this.running = false;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  private schedule(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  private placeCall(): void {
    if (!this.running) return;
    const free = this.opts.lines.filter((l) => !this.busy.has(l));
    if (free.length > 0) {
      const call: SimulatedCall = {
        callId: randomUUID(),
        line: free[randomInt(free.length)]!,
        ...randomCaller(),
        serviceNumber: SERVICE_NUMBERS[randomInt(SERVICE_NUMBERS.length)]!,
        agent: ADVISERS[randomInt(ADVISERS.length)]!,
      };
      this.busy.add(call.line);
      const min = this.opts.minCallMs ?? 8000;
      const length = min + randomInt(Math.max(1, (this.opts.maxCallMs ?? 20000) - min));
      void this.send('start', call);
      this.schedule(1500 + randomInt(1500), () => void this.send('answer', call));
      this.schedule(length, () => {
        void this.send('end', call).finally(() => this.busy.delete(call.line));
      });
    }
    const every = this.opts.intervalMs ?? 4000;
    this.schedule(every / 2 + randomInt(every), () => this.placeCall());
  }

  private async send(type: 'start' | 'answer' | 'end', call: SimulatedCall): Promise<void> {
    const body: Record<string, unknown> = { id: randomUUID(), type, callId: call.callId, at: new Date().toISOString() };
    if (type === 'start') Object.assign(body, { line: call.line, caller: call.caller, callerPresentation: call.callerPresentation, serviceNumber: call.serviceNumber });
    if (type === 'answer') body.agent = call.agent;
    try {
      const res = await fetch(this.opts.url, { method: 'POST', headers: { authorization: `Bearer ${this.opts.token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      this.opts.onEvent?.(type, call, await res.json());
    } catch (err) {
      this.opts.onEvent?.(type, call, { error: (err as Error).message });
    }
  }
}
