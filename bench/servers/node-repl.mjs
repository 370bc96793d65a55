// Node's own REPL served over TCP, the reference for confab's listener: one
// `repl.start` per connection on the socket, with TCP_NODELAY (Node's REPL writes a value and
// the next prompt in two writes; without it, Nagle would hold the prompt back until the
// client's ACK of the value). No colours, no echo (terminal: false), the global context.
import net from "node:net";
import repl from "node:repl";

const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  socket.on("error", () => socket.destroy());
  const r = repl.start({ input: socket, output: socket, prompt: "> ", terminal: false, useGlobal: true });
  r.on("exit", () => socket.end());
});

server.listen(Number(process.env.PORT ?? process.argv[2] ?? 0), "127.0.0.1", () => {
  console.log(`PORT ${server.address().port}`);
});
