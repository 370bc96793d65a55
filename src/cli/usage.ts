/** The text of `confab --help`. */
export const usage = `confab: TCP servers and a live TypeScript REPL inside a running Node.js program

Usage:
  confab serve [--service S] [--host ADDR] [--function MODULE#EXPORT] [--announce]
               [--max-connections N] [--idle-timeout MS] [--eval-timeout MS] [--drain-timeout MS]
      Start a server: the built-in listener server by default, or one that calls
      MODULE's EXPORT (default export when #EXPORT is left out) with each connection.
      S is a port, a numeric string or a service name (default "confab" = 10243).
      On SIGINT or SIGTERM: stops accepting at once, lets running processes finish
      for --drain-timeout ms (default 5000), then closes them and exits 0.
  confab connect [HOST] SERVICE [--name NAME]
      Open a listener session on a listener server (HOST defaults to 127.0.0.1).
  confab talk [--service S]
      Run the LispWorks talk example: a server and a client that talks to it.
  confab --help | --version
`;
