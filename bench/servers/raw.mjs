// Baseline: raw node:net, hand-split Buffers, one socket.write per 'data' event.
// Replies "You sent: '<line>'\n" for every line (LF or CRLF), bytes copied verbatim.
import net from "node:net";

const HEAD = Buffer.from("You sent: '");
const TAIL = Buffer.from("'\n");
const EXTRA = HEAD.length + TAIL.length;
const LIMIT = 4 * 1024 * 1024; // longest line held before giving up on a connection

const server = net.createServer((socket) => {
  let pending = null; // bytes of an unfinished line
  const ends = []; // reused: positions of "\n" in the current chunk
  socket.on("data", (chunk) => {
    const buf = pending === null ? chunk : Buffer.concat([pending, chunk]);
    pending = null;
    ends.length = 0;
    let size = 0;
    let start = 0;
    for (let nl = buf.indexOf(10, start); nl !== -1; nl = buf.indexOf(10, start)) {
      const end = nl > start && buf[nl - 1] === 13 ? nl - 1 : nl;
      ends.push(end, nl);
      size += end - start + EXTRA;
      start = nl + 1;
    }
    if (start < buf.length) {
      if (buf.length - start > LIMIT) return socket.destroy();
      pending = buf.subarray(start);
    }
    if (size === 0) return;
    const out = Buffer.allocUnsafe(size);
    let o = 0;
    start = 0;
    for (let i = 0; i < ends.length; i += 2) {
      o += HEAD.copy(out, o);
      o += buf.copy(out, o, start, ends[i]);
      o += TAIL.copy(out, o);
      start = ends[i + 1] + 1;
    }
    socket.write(out);
  });
  socket.on("error", () => socket.destroy());
});

server.listen(Number(process.env.PORT ?? process.argv[2] ?? 0), "127.0.0.1", () => {
  console.log(`PORT ${server.address().port}`);
});
