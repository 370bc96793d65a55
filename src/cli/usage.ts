/** The text of `confab --help`. */
export const usage = `confab: TCP servers and a live TypeScript REPL inside a running Node.js program

Usage:
  confab serve [--service S] [--host ADDR] [--function MODULE#EXPORT] [--announce]
               [--max-connections N] [--max-startups N] [--idle-timeout MS] [--eval-timeout MS]
               [--max-buffered-input BYTES] [--drain-timeout MS]
               [--workers N] [--tls-cert FILE --tls-key FILE [--tls-ca FILE]] [--token-file FILE]
               [--audit FILE] [--record DIR] [--monitor [ADDR:]PORT] [--proxy-protocol]
               [--log text|json|none]
      Start a server: the built-in listener server by default, or one that calls
      MODULE's EXPORT (default export when #EXPORT is left out) with each connection.
      S is a port, a numeric string or a service name (default "confab" = 10243),
      or a Unix socket path: unix:PATH, or any S containing "/" (created mode 0600).
      --proxy-protocol expects a PROXY v1/v2 header (HAProxy send-proxy) first on
      every connection and reports the client it names as the peer.
      Started by systemd socket activation (LISTEN_FDS/LISTEN_PID), it serves the
      inherited socket (fd 3) instead of binding --service.
      A listener server takes --max-connections sessions (default 100) and, besides,
      --max-startups connections not yet sessions (default 32; when one more comes,
      the oldest still waiting for its token or name line is dropped).
      --max-buffered-input BYTES bounds the unread input all connections hold
      together (default 64 MiB; 0: no bound): past it, the connection holding the
      most is told why in one line and closed.
      Server events (connections, refusals and their reasons, how processes
      ended) are logged on standard output: --log text (default), json or none.
      On SIGINT or SIGTERM: stops accepting at once, lets running processes finish
      for --drain-timeout ms (default 5000), then closes them and exits 0.
      --workers N (with --function) runs N worker processes (node:cluster) on one
      port; SIGINT/SIGTERM stops them all, each after its drain.
      --tls-cert/--tls-key speak TLS; --tls-ca admits only clients with a certificate
      that CA signed (a session's user is then its certificate's common name).
      A listener token (clients send "token SECRET" first) comes from --token-file
      FILE or $CONFAB_TOKEN. FILE holds one token, or lines NAME TOKEN, one user each
      ("#" starts a comment): a session then belongs to the user whose token it sent
      (ps() and the monitor show it), and SIGHUP reads FILE again (add or revoke users
      without a restart). A listener server binds a non-loopback --host only with a
      token or with --tls-ca.
      --audit FILE appends one JSON object per line to FILE (created mode 0600): each
      session's start and end (user, session, peer, how it ended), each input before
      it runs and how it ended (value, error, timeout, interrupted, abandoned, and
      how long it took), and each connection refused, with why. No token is in it.
      --record DIR records each session to its own file in DIR (asciicast v2, mode
      0600, at most 8 MiB each): asciinema play FILE replays it, and --monitor's page
      offers each recording to replay.
      --monitor [ADDR:]PORT also serves a live monitor page (servers, processes,
      connections, a kill button per process) at http://ADDR:PORT/; ADDR must be
      loopback (default 127.0.0.1), PORT 0 picks one (--announce prints the URL).
  confab connect [HOST] SERVICE [--name NAME] [--tls] [--ca FILE] [--cert FILE --key FILE]
                 [--token-file FILE] [--connect-timeout MS]
      Open a listener session on a listener server (HOST defaults to 127.0.0.1).
      SERVICE may be a Unix socket path. --tls speaks TLS (--ca: the server's CA;
      --cert/--key: a client certificate); the token comes from --token-file (the token
      alone, or your own NAME TOKEN line) or $CONFAB_TOKEN.
  confab eval [HOST] SERVICE EXPR... [--json] [--each-address] [--name NAME] [--tls]
              [--ca FILE] [--cert FILE --key FILE] [--token-file FILE] [--connect-timeout MS]
      Evaluate each EXPR in order in one listener session and print what it wrote and
      its value as the REPL does (an error on standard error). EXPR "-" is all of
      standard input, as one input. The first input that throws ends the run. Exit
      status: 0 every input gave a value, 1 one threw, 2 no session (refused,
      unreachable, a wrong token, no greeting within --connect-timeout, default 5000).
      --json prints one object per input per line: input, value or error, threw,
      status, output, ms. --each-address sends the inputs to every address of HOST
      (as the system resolver gives them) in parallel, one session each; each answer
      names its address, and the exit status is the worst. HOST is read as given when
      the first word is not a port, path or service name (or use --host).
  confab mcp [HOST] SERVICE [--name NAME] [--tls] [--ca FILE] [--cert FILE --key FILE]
             [--token-file FILE] [--connect-timeout MS]
      A Model Context Protocol server on standard input and output, for AI agents:
      tools evaluate (code in the program; declarations persist between calls),
      list_processes and kill_process, each call through a listener session named
      after the MCP client (--name overrides), so the server's token, audit and
      recording apply. Add it to an agent as the command: npx confab mcp SERVICE.
  confab talk [--service S]
      Run the LispWorks talk example: a server and a client that talks to it.
  confab --help | --version
`;
