/**
 * The monitor's memory of the last minute: one sample a tick of open connections and
 * throughput, in a ring of fixed size, so a monitor left open for weeks holds no more than it
 * did after one minute.
 *
 * @module
 */
import { ServerProcess } from "../comm/server-base.js";
import { listAllProcesses } from "../mp/registry.js";
import { connectionOf, type MonitorSample } from "./snapshot.js";

/** Samples kept by default: a minute at one a second. */
export const DEFAULT_HISTORY_LENGTH = 60;

/**
 * Takes samples and keeps the last `capacity` of them.
 *
 * Throughput comes from the servers' cumulative byte counters (which count closed connections
 * too) and from connection processes no server started (clients the program opened), each
 * remembered by id: a source that vanishes between two samples (a server killed, a client
 * closed) costs its last second of traffic, never a negative rate or a spike.
 */
export class History {
  readonly capacity: number;
  readonly #ring: MonitorSample[] = [];
  #start = 0;
  #lastTime: number;
  #lastTotals = new Map<string, number>();

  constructor(capacity = DEFAULT_HISTORY_LENGTH) {
    this.capacity = Math.max(1, Math.floor(capacity));
    this.#lastTime = Date.now();
    // The first sample measures from now: traffic from before the monitor started is no rate.
    this.#measure();
  }

  /** Takes a sample of the program now, keeps it, and returns it. */
  sample(): MonitorSample {
    const now = Date.now();
    const { connections, bytes } = this.#measure();
    const seconds = Math.max(0.001, (now - this.#lastTime) / 1000);
    this.#lastTime = now;
    const sample: MonitorSample = { time: now, connections, bytesPerSecond: Math.round(bytes / seconds) };
    if (this.#ring.length < this.capacity) this.#ring.push(sample);
    else {
      this.#ring[this.#start] = sample;
      this.#start = (this.#start + 1) % this.capacity;
    }
    return sample;
  }

  /** The kept samples, oldest first. */
  samples(): MonitorSample[] {
    return [...this.#ring.slice(this.#start), ...this.#ring.slice(0, this.#start)];
  }

  /** Open connections now, and bytes moved since the previous measure. */
  #measure(): { connections: number; bytes: number } {
    const totals = new Map<string, number>();
    let connections = 0;
    let bytes = 0;
    for (const p of listAllProcesses()) {
      let key: string;
      let total: number;
      if (p instanceof ServerProcess) {
        const c = p.counters;
        connections += c.active;
        key = `s${p.id}`;
        total = c.bytesIn + c.bytesOut;
      } else {
        // A server's connections are in its counters already.
        if (p.parent instanceof ServerProcess) continue;
        const stream = connectionOf(p);
        if (stream === undefined) continue;
        connections++;
        key = `c${p.id}`;
        total = stream.bytesRead + stream.bytesWritten;
      }
      totals.set(key, total);
      bytes += Math.max(0, total - (this.#lastTotals.get(key) ?? 0));
    }
    this.#lastTotals = totals;
    return { connections, bytes };
  }
}
