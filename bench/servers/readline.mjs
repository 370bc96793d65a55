// node:readline over each socket, one socket.write per line.
import net from "node:net";
import readline from "node:readline";

const server = net.createServer((socket) => {
  const rl = readline.createInterface({ input: socket, crlfDelay: Infinity });
  rl.on("line", (line) => {
    socket.write(`You sent: '${line}'\n`);
  });
  socket.on("error", () => socket.destroy());
});

server.listen(Number(process.env.PORT ?? process.argv[2] ?? 0), "127.0.0.1", () => {
  console.log(`PORT ${server.address().port}`);
});
