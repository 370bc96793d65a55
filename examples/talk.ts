// The seed's talk example (LispWorks' comm:start-up-server page), line for line on confab.
// In your own project, import from "confab" instead of "../src/index.js".
import type { Socket } from "node:net";
import { comm, mp } from "../src/index.js";

/** `*talk-port*`: the seed's port. Pass 0 to let the OS pick a free one. */
export const talkPort = 10244;

/** `make-stream-and-talk`: the server's function, called with each connected socket. */
export function makeStreamAndTalk(handle: Socket): void {
  const stream = new comm.SocketStream({ socket: handle, direction: "io", elementType: "base-char" });
  mp.processRunFunction(`talk ${stream.remotePort}`, {}, talkOnStream, stream);
}

/** `talk-on-stream`: answers every line until the client closes, then closes. */
export async function talkOnStream(stream: comm.SocketStream): Promise<void> {
  try {
    for (let line; (line = await stream.readLine()) !== null;) {
      stream.writeString(`You sent: '${line}'\n`);
      stream.forceOutput();
    }
  } finally {
    stream.close();
  }
}

/** `talking-to-myself`: the client; `out` receives the six lines of the seed's transcript. */
export async function talkingToMyself(
  port: number = talkPort,
  out: (line: string) => void = console.log,
): Promise<void> {
  const talk = await comm.openTcpStream("localhost", port);
  try {
    for (const monolog of ["Hello self.", "Why don't you say something original?", "Talk to you later then.  Bye."]) {
      talk.writeLine(monolog);
      talk.forceOutput();
      out(`I said: "${monolog}"`);
      out(`Self replied: "${String(await talk.readLine())}"`);
    }
  } finally {
    talk.close();
  }
}

/** Starts the talk server (`(comm:start-up-server :function 'make-stream-and-talk :service *talk-port*)`). */
export function startTalkServer(service: number | string = talkPort): Promise<comm.ServerProcess> {
  return comm.startUpServer({ function: makeStreamAndTalk, service });
}
