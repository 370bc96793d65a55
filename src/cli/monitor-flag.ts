import { ConfabError, ErrorCodes } from "../errors.js";
import type { MonitorOptions } from "../monitor/monitor-server.js";

/**
 * `--monitor [ADDR:]PORT` as the monitor's options: `9000`, `127.0.0.1:9000`, `[::1]:9000`,
 * `localhost:0`. Whether ADDR is loopback is the monitor's to check, with its own message.
 */
export function parseMonitorFlag(text: string): MonitorOptions {
  const match = /^(?:(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):)?(\d{1,5})$/.exec(text.trim());
  const port = match === null ? NaN : Number(match[3]);
  if (match === null || port > 65535) {
    throw new ConfabError(
      ErrorCodes.INVALID_ARGUMENT,
      `--monitor takes [ADDR:]PORT (9000, 127.0.0.1:9000, [::1]:9000), got "${text}"`,
    );
  }
  const address = match[1] ?? match[2];
  return address === undefined ? { port } : { port, address };
}
