/**
 * What a process waits for, as its `whostate` shows it: the one place where a wait begins and
 * ends, for every module that makes a process wait (a stream's read in comm, a mailbox read, a
 * join, `processWait`, a listener's evaluation). A process keeps its current wait in one
 * symbol-keyed field: beginning and ending a wait are field writes, and the text is made only
 * when someone asks, so a stream's reads can mark every wait on the hot path.
 *
 * @module
 */

/** @internal A wait that makes its text only when asked (a stream read names its peer). */
export const kWaitText: unique symbol = Symbol("confab.waitText");

/** @internal The field a process keeps its current wait in. */
export const kWait: unique symbol = Symbol("confab.wait");

/** @internal A wait: its text, or something that makes it. */
export type Wait = string | { [kWaitText](): string };

/** @internal Something that can wait: a process. */
export interface Waiter {
  [kWait]: Wait | undefined;
}

/**
 * @internal Marks `waiter` as waiting for `wait` until {@link endWait} with the same wait, and
 * returns the wait it replaces (for a wait inside another, to put back at its end).
 */
export function beginWait(waiter: Waiter, wait: Wait): Wait | undefined {
  const previous = waiter[kWait];
  waiter[kWait] = wait;
  return previous;
}

/**
 * @internal Ends the wait `wait` began, unless another has begun since: the waiter then waits
 * for `previous` (what {@link beginWait} returned), or for nothing.
 */
export function endWait(waiter: Waiter, wait: Wait, previous?: Wait): void {
  if (waiter[kWait] === wait) waiter[kWait] = previous;
}

/** @internal A wait's text, or `null` for none. */
export function waitText(wait: Wait | undefined): string | null {
  return wait === undefined ? null : typeof wait === "string" ? wait : wait[kWaitText]();
}
