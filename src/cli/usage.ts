/** The text of `confab --help`. */
export const usage = `confab: TCP servers and a live TypeScript REPL inside a running Node.js program

Usage:
  confab serve [--service S] [--host ADDR] [--function MODULE#EXPORT] [--announce]
      Start a server: the built-in listener server by default, or one that calls
      MODULE's EXPORT (default export when #EXPORT is left out) with each connection.
      S is a port, a numeric string or a service name (default "confab" = 10243).
      Stops cleanly on SIGINT or SIGTERM.
  confab connect [HOST] SERVICE [--name NAME]
      Open a listener session on a listener server (HOST defaults to 127.0.0.1).
  confab talk [--service S]
      Run the LispWorks talk example: a server and a client that talks to it.
  confab --help | --version
`;
