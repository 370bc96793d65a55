import { parseArgs } from "node:util";
import { serverTerminate } from "../comm/server.js";
import { startTalkServer, talkingToMyself } from "../../examples/talk.js";

/** `confab talk`: starts the seed's talk server, runs its client, prints the transcript. */
export async function talk(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { service: { type: "string", default: "0" } }, strict: true });
  const server = await startTalkServer(values.service);
  try {
    await talkingToMyself(server.port);
  } finally {
    serverTerminate(server);
  }
  return 0;
}
