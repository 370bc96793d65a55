import { AsyncLocalStorage } from "node:async_hooks";
import type { Process } from "./process.js";

/** The async context that knows which process's code is running. */
export const processContext = new AsyncLocalStorage<Process>();

/** Live processes by id, in start order (Map keeps insertion order). */
export const liveProcesses = new Map<number, Process>();

/**
 * All processes that are still running, oldest first, as LispWorks' `mp:list-all-processes`.
 *
 * @example
 * ```ts
 * for (const p of mp.listAllProcesses()) console.log(p.id, p.name);
 * ```
 */
export function listAllProcesses(): Process[] {
  return [...liveProcesses.values()];
}

/** The oldest running process called `name`, or `undefined`, as `mp:find-process-from-name`. */
export function findProcessFromName(name: string): Process | undefined {
  for (const p of liveProcesses.values()) if (p.name === name) return p;
  return undefined;
}

/**
 * The process whose code is running now, followed through `await`s and callbacks by
 * `AsyncLocalStorage`; `undefined` outside any process (as in a server's `function`).
 */
export function getCurrentProcess(): Process | undefined {
  return processContext.getStore();
}
