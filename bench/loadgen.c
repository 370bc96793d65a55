/*
 * loadgen: a small epoll load generator for the seed's talk protocol.
 *
 *   client sends  "<line>\n"
 *   server answers "You sent: '<line>'\n"   (one reply per line, in order)
 *
 * Single-threaded, non-blocking sockets, level-triggered epoll. Every reply is checked
 * against the line that was sent (same connection, same order). Traffic goes to
 * 127.0.0.1 only. Every phase is bounded in time; a server that stops answering is
 * reported as "stalled" after --stall seconds.
 *
 * Modes
 *   rr       C connections, one line in flight each; rate, p50/p99 latency (us)
 *   pipe     C connections x D lines in flight each; lines/s, MB/s both ways
 *   connect  C concurrent slots: open, one round trip, close, repeat; rate, latency
 *   idle     open N connections, one round trip on each, print "READY <n>", hold them
 *            until stdin closes (or SIGTERM/SIGINT, or --hold-max seconds), then close
 *
 * Output: one JSON line on stdout (idle mode prints "READY <n>" first). When
 * --server-pid is given, the server's CPU time (utime+stime from /proc/PID/stat) is
 * sampled at the start and end of the measurement window, so the figures need no
 * help from the harness (a comma-separated list of pids, a primary and its workers,
 * is summed, and each one's share printed too). The generator's own CPU time
 * (getrusage) over the same window is reported too.
 *
 * Build: cc -O2 -o bench/build/loadgen bench/loadgen.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum { M_RR, M_PIPE, M_CONNECT, M_IDLE };
enum { S_FREE, S_CONNECTING, S_WAIT_REPLY, S_ACTIVE, S_HELD, S_CLOSED };
enum { P_WARMUP, P_MEASURE, P_DRAIN, P_DONE };

static const char *mode_names[] = { "rr", "pipe", "connect", "idle" };

static struct {
  int mode;
  int port;
  int conns;        /* rr, pipe, connect: connections / concurrent slots */
  int depth;        /* pipe: lines in flight per connection */
  int len;          /* payload length of a line, without "\n" */
  double duration;  /* measurement window, s */
  double warmup;    /* s before the window */
  double stall;     /* s without any reply before giving up */
  double drain;     /* s to wait for in-flight replies at the end */
  int idle_n;       /* idle: connections to open */
  int idle_conc;    /* idle: connections being opened at once */
  double setup_max; /* idle: s to open them all */
  double hold_max;  /* idle: s to hold them at most */
  int server_pid;   /* the first of server_pids: the one the figures are named by */
} o = { M_PIPE, 0, 64, 16, 32, 3.0, 1.0, 5.0, 2.0, 1000, 256, 60.0, 300.0, 0 };

/* --server-pid PID[,PID...]: a server spread over several processes (a primary and its
   workers) is measured as the sum of their CPU times */
#define MAX_SERVER_PIDS 64
static int server_pids[MAX_SERVER_PIDS];
static int n_server_pids;

#define PREFIX_LEN 19
#define HIST_MAX 200000 /* 1 us buckets up to 200 ms */
static const char REPLY_HEAD[] = "You sent: '";
#define REPLY_HEAD_LEN 11

typedef struct {
  int fd;
  int state;
  uint32_t id;
  uint64_t sseq, rseq;
  uint64_t t0; /* ns: send time (rr) or connect start (connect, idle) */
  char *rbuf; uint32_t rlen, rcap;
  char *wbuf; uint32_t wlen, woff, wcap;
  uint32_t events;
} conn_t;

static conn_t *conns;
static int nconns;
static int epfd;
static volatile sig_atomic_t got_signal;
static int phase = P_WARMUP;

/* counters (measurement window only, unless named *_total) */
static uint64_t lines_win, bytes_out_win, bytes_in_win, conns_win;
static uint64_t lines_total, conns_total, errors, reconnects_failed, dropped;
static uint32_t *hist; static uint64_t hist_over, hist_n, hist_max_us; static double hist_sum_us;
static char first_error[512];

static uint64_t now_ns(void) {
  struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double self_cpu_s(void) {
  struct rusage ru; getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* utime + stime of a process, in seconds; -1 when unreadable */
static double proc_cpu_s(int pid) {
  if (pid <= 0) return -1;
  char path[64], buf[2048];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  int fd = open(path, O_RDONLY);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  if (!p) return -1;
  /* after ")": state(3) ppid(4) pgrp(5) session(6) tty(7) tpgid(8) flags(9) minflt(10)
     cminflt(11) majflt(12) cmajflt(13) utime(14) stime(15) */
  unsigned long long ut = 0, st = 0;
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) return -1;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* the CPU time of every server process, summed; each one's in each[] when given; -1 when one is unreadable */
static double servers_cpu_s(double *each) {
  if (n_server_pids == 0) return -1;
  double sum = 0;
  for (int i = 0; i < n_server_pids; i++) {
    double v = proc_cpu_s(server_pids[i]);
    if (v < 0) return -1;
    if (each) each[i] = v;
    sum += v;
  }
  return sum;
}

/* whole machine, from the first line of /proc/stat, in seconds: busy (all but idle and
   iowait), softirq (loopback TCP work is largely done there, charged to no process), steal */
typedef struct { double busy, softirq, steal; int ok; } mstat_t;
static mstat_t machine_cpu(void) {
  mstat_t m = { 0, 0, 0, 0 };
  FILE *f = fopen("/proc/stat", "r");
  if (!f) return m;
  unsigned long long v[10] = { 0 };
  int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
                 &v[5], &v[6], &v[7], &v[8], &v[9]);
  fclose(f);
  if (n < 8) return m;
  double hz = (double)sysconf(_SC_CLK_TCK);
  /* user nice system idle iowait irq softirq steal guest guest_nice; guest is inside user */
  m.busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / hz;
  m.softirq = (double)v[6] / hz;
  m.steal = (double)v[7] / hz;
  m.ok = 1;
  return m;
}

static void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') { fputc('\\', f); fputc(c, f); }
    else if (c < 0x20) fprintf(f, "\\u%04x", c);
    else fputc(c, f);
  }
  fputc('"', f);
}

static void fatal(const char *fmt, ...) {
  char msg[512];
  va_list ap; va_start(ap, fmt); vsnprintf(msg, sizeof msg, fmt, ap); va_end(ap);
  printf("{\"mode\":\"%s\",\"ok\":false,\"error\":", mode_names[o.mode]);
  json_str(stdout, msg);
  printf(",\"lines_total\":%llu,\"conns_total\":%llu}\n", (unsigned long long)lines_total,
         (unsigned long long)conns_total);
  fflush(stdout);
  exit(2);
}

static void note_error(const char *fmt, ...) {
  errors++;
  if (first_error[0]) return;
  va_list ap; va_start(ap, fmt); vsnprintf(first_error, sizeof first_error, fmt, ap); va_end(ap);
}

/* ---- lines ---------------------------------------------------------------------- */

static const char HEX[] = "0123456789abcdef";
static const char PAD[] = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/* writes exactly o.len bytes: "L" id(4 hex) "-" seq(12 hex) " " padding */
static void gen_line(char *d, uint32_t id, uint64_t seq) {
  d[0] = 'L';
  for (int i = 0; i < 4; i++) d[1 + i] = HEX[(id >> (12 - 4 * i)) & 15];
  d[5] = '-';
  for (int i = 0; i < 12; i++) d[6 + i] = HEX[(seq >> (44 - 4 * i)) & 15];
  d[18] = ' ';
  for (int i = PREFIX_LEN, k = (int)(seq % 61); i < o.len; i++, k++) {
    if (k >= 61) k = 0;
    d[i] = PAD[k];
  }
}

/* ---- connections ------------------------------------------------------------------ */

static void lose(conn_t *c);

static void set_events(conn_t *c, uint32_t ev) {
  if (c->events == ev) return;
  struct epoll_event e = { .events = ev, .data.u64 = (uint64_t)(c - conns) };
  if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &e) < 0) fatal("epoll_ctl mod: %s", strerror(errno));
  c->events = ev;
}

static void conn_buffers(conn_t *c) {
  if (c->rbuf) return;
  int depth = o.mode == M_PIPE ? o.depth : 1;
  c->rcap = (uint32_t)(depth * (o.len + REPLY_HEAD_LEN + 2) + 512);
  c->wcap = (uint32_t)((depth + 1) * (o.len + 1));
  c->rbuf = malloc(c->rcap);
  c->wbuf = malloc(c->wcap);
  if (!c->rbuf || !c->wbuf) fatal("out of memory");
}

/* starts a non-blocking connect; returns 0 or -1 (error noted) */
static int conn_open(conn_t *c) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) { note_error("socket: %s", strerror(errno)); return -1; }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)o.port) };
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  c->fd = fd; c->rlen = 0; c->wlen = c->woff = 0; c->sseq = c->rseq = 0;
  c->t0 = now_ns();
  conn_buffers(c);
  int r = connect(fd, (struct sockaddr *)&a, sizeof a);
  if (r < 0 && errno != EINPROGRESS) {
    note_error("connect 127.0.0.1:%d: %s", o.port, strerror(errno));
    close(fd); c->fd = -1; c->state = S_CLOSED;
    return -1;
  }
  c->state = S_CONNECTING;
  struct epoll_event e = { .events = EPOLLOUT, .data.u64 = (uint64_t)(c - conns) };
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e) < 0) fatal("epoll_ctl add: %s", strerror(errno));
  c->events = EPOLLOUT;
  return 0;
}

static void conn_close(conn_t *c) {
  if (c->fd >= 0) { epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL); close(c->fd); }
  c->fd = -1; c->state = S_CLOSED; c->events = 0;
}

/* flushes wbuf; returns 0, or -1 on a socket error (conn closed) */
static int conn_flush(conn_t *c) {
  while (c->woff < c->wlen) {
    ssize_t n = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
    if (n > 0) {
      c->woff += (uint32_t)n;
      if (phase == P_MEASURE) bytes_out_win += (uint64_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      set_events(c, EPOLLIN | EPOLLOUT);
      return 0;
    }
    note_error("write: %s", n < 0 ? strerror(errno) : "short write");
    lose(c);
    return -1;
  }
  c->wlen = c->woff = 0;
  set_events(c, EPOLLIN);
  return 0;
}

static int send_lines(conn_t *c, int k) {
  if (c->woff > 0 && c->woff == c->wlen) c->wlen = c->woff = 0;
  if (c->woff > 0) { /* compact */
    memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
    c->wlen -= c->woff; c->woff = 0;
  }
  for (int i = 0; i < k; i++) {
    if (c->wlen + (uint32_t)o.len + 1 > c->wcap) fatal("internal: write buffer full");
    gen_line(c->wbuf + c->wlen, c->id, c->sseq++);
    c->wlen += (uint32_t)o.len;
    c->wbuf[c->wlen++] = '\n';
  }
  return conn_flush(c);
}

static void hist_add(uint64_t ns) {
  uint64_t us = (ns + 500) / 1000;
  if (us < HIST_MAX) hist[us]++; else hist_over++;
  if (us > hist_max_us) hist_max_us = us;
  hist_n++; hist_sum_us += (double)ns / 1000.0;
}

static double hist_pct(double p) {
  if (hist_n == 0) return -1;
  uint64_t want = (uint64_t)(p * (double)hist_n);
  if (want >= hist_n) want = hist_n - 1;
  uint64_t acc = 0;
  for (uint64_t i = 0; i < HIST_MAX; i++) {
    acc += hist[i];
    if (acc > want) return (double)i;
  }
  return (double)hist_max_us;
}

static uint64_t last_progress;
static int open_target, opened, held, inflight; /* idle */

static void start_slot(conn_t *c) {
  /* connect mode: re-open a slot; on failure try again later (bounded by the error cap) */
  if (conn_open(c) < 0) {
    reconnects_failed++;
    if (errors > 1000) fatal("too many errors, first: %s", first_error);
  }
}

static void idle_open_more(void) {
  while (opened < open_target && inflight < o.idle_conc) {
    conn_t *c = &conns[opened++];
    if (conn_open(c) < 0) { reconnects_failed++; continue; }
    inflight++;
  }
}

/* c failed (error already noted): close it and carry on as the mode says */
static void lose(conn_t *c) {
  int was = c->state;
  conn_close(c);
  switch (o.mode) {
  case M_CONNECT:
    if (phase < P_DRAIN) start_slot(c);
    break;
  case M_IDLE:
    if (was == S_HELD) { held--; dropped++; }
    else { inflight--; reconnects_failed++; idle_open_more(); }
    break;
  default:
    if (phase < P_DRAIN) fatal("%s", first_error);
  }
}

/* a whole reply line [p, p+n) (without "\n") arrived on c */
static void check_reply(conn_t *c, const char *p, uint32_t n) {
  char want[4096];
  if (c->rseq >= c->sseq) fatal("conn %u: reply without a request: '%.*s'", c->id, (int)(n > 80 ? 80 : n), p);
  gen_line(want, c->id, c->rseq);
  if (n != (uint32_t)o.len + REPLY_HEAD_LEN + 1 || memcmp(p, REPLY_HEAD, REPLY_HEAD_LEN) != 0 ||
      memcmp(p + REPLY_HEAD_LEN, want, (size_t)o.len) != 0 || p[n - 1] != '\'')
    fatal("conn %u line %llu: expected \"You sent: '%.*s'\", got \"%.*s\"", c->id,
          (unsigned long long)c->rseq, o.len, want, (int)(n > 120 ? 120 : n), p);
  c->rseq++;
}

static void on_readable(conn_t *c, uint64_t now) {
  if (c->rlen >= c->rcap) fatal("conn %u: reply longer than %u bytes", c->id, c->rcap);
  ssize_t n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return;
    note_error("read: %s", strerror(errno));
    lose(c);
    return;
  }
  if (n == 0) {
    if (c->state == S_HELD) note_error("server closed an idle connection");
    else note_error("server closed the connection with %llu replies missing",
                    (unsigned long long)(c->sseq - c->rseq));
    lose(c);
    return;
  }
  if (phase == P_MEASURE) bytes_in_win += (uint64_t)n;
  if (c->state == S_HELD) fatal("server sent data on an idle connection");
  uint32_t start = 0, end = c->rlen + (uint32_t)n;
  int k = 0;
  char *nl;
  while (start < end && (nl = memchr(c->rbuf + start, '\n', end - start)) != NULL) {
    uint32_t pos = (uint32_t)(nl - c->rbuf);
    check_reply(c, c->rbuf + start, pos - start);
    start = pos + 1;
    k++;
  }
  if (start < end) memmove(c->rbuf, c->rbuf + start, end - start);
  c->rlen = end - start;
  if (k == 0) return;
  last_progress = now;
  lines_total += (uint64_t)k;
  if (phase == P_MEASURE) lines_win += (uint64_t)k;

  switch (o.mode) {
  case M_RR:
  case M_PIPE:
    if (o.mode == M_RR && phase == P_MEASURE) hist_add(now - c->t0);
    if (phase < P_DRAIN) {
      c->t0 = now;
      send_lines(c, k);
    } else if (c->rseq == c->sseq) {
      conn_close(c);
    }
    break;
  case M_CONNECT:
    conns_total++;
    if (phase == P_MEASURE) { conns_win++; hist_add(now - c->t0); }
    conn_close(c);
    if (phase < P_DRAIN) start_slot(c);
    break;
  case M_IDLE:
    conns_total++;
    c->state = S_HELD;
    held++;
    inflight--;
    set_events(c, EPOLLIN | EPOLLRDHUP); /* keep watching for a server-side close */
    idle_open_more();
    break;
  }
}

static void on_connected(conn_t *c) {
  int err = 0; socklen_t len = sizeof err;
  getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err) {
    note_error("connect 127.0.0.1:%d: %s", o.port, strerror(err));
    lose(c);
    return;
  }
  c->state = (o.mode == M_RR || o.mode == M_PIPE) ? S_ACTIVE : S_WAIT_REPLY;
  if (o.mode != M_CONNECT) c->t0 = now_ns();
  send_lines(c, o.mode == M_PIPE ? o.depth : 1);
}

static void on_signal(int s) { (void)s; got_signal = 1; }

static void usage(void) {
  fprintf(stderr,
    "usage: loadgen --mode rr|pipe|connect|idle --port P [--conns C] [--depth D] [--len L]\n"
    "               [--duration S] [--warmup S] [--stall S] [--server-pid PID[,PID...]]\n"
    "               [--idle N] [--idle-concurrency K] [--setup-max S] [--hold-max S]\n");
  exit(64);
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (strcmp(a, name) == 0 && v && (i++, 1))
    if (ARG("--mode")) {
      int m = -1;
      for (int k = 0; k < 4; k++) if (strcmp(v, mode_names[k]) == 0) m = k;
      if (m < 0) usage();
      o.mode = m;
    }
    else if (ARG("--port")) o.port = atoi(v);
    else if (ARG("--conns")) o.conns = atoi(v);
    else if (ARG("--depth")) o.depth = atoi(v);
    else if (ARG("--len")) o.len = atoi(v);
    else if (ARG("--duration")) o.duration = atof(v);
    else if (ARG("--warmup")) o.warmup = atof(v);
    else if (ARG("--stall")) o.stall = atof(v);
    else if (ARG("--drain")) o.drain = atof(v);
    else if (ARG("--idle")) o.idle_n = atoi(v);
    else if (ARG("--idle-concurrency")) o.idle_conc = atoi(v);
    else if (ARG("--setup-max")) o.setup_max = atof(v);
    else if (ARG("--hold-max")) o.hold_max = atof(v);
    else if (ARG("--server-pid")) {
      n_server_pids = 0;
      for (const char *q = v; *q && n_server_pids < MAX_SERVER_PIDS;) {
        int pid = atoi(q);
        if (pid > 0) server_pids[n_server_pids++] = pid;
        const char *comma = strchr(q, ',');
        if (!comma) break;
        q = comma + 1;
      }
      o.server_pid = n_server_pids ? server_pids[0] : 0;
    }
    else usage();
#undef ARG
  }
  if (o.port <= 0 || o.port > 65535) usage();
  if (o.len < PREFIX_LEN) o.len = PREFIX_LEN;
  if (o.len > 4000) o.len = 4000;
  if (o.conns < 1) o.conns = 1;
  if (o.conns > 4096) o.conns = 4096;
  if (o.depth < 1) o.depth = 1;
  if (o.depth > 4096) o.depth = 4096;
  if (o.duration <= 0 || o.duration > 600) o.duration = 3;
  if (o.warmup < 0 || o.warmup > 60) o.warmup = 1;
  if (o.hold_max <= 0 || o.hold_max > 3600) o.hold_max = 300;
  if (o.idle_conc < 1) o.idle_conc = 1;
  if (o.mode == M_RR) o.depth = 1;

  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa = { 0 };
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  /* file descriptors: raise the soft limit to the hard one, cap idle N to fit */
  int idle_requested = o.idle_n, idle_capped = 0;
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < rl.rlim_max) { rl.rlim_cur = rl.rlim_max; setrlimit(RLIMIT_NOFILE, &rl); getrlimit(RLIMIT_NOFILE, &rl); }
  long fd_room = (long)(rl.rlim_cur == RLIM_INFINITY ? 1 << 20 : rl.rlim_cur) - 32;
  if (o.mode == M_IDLE && o.idle_n > fd_room) { o.idle_n = (int)fd_room; idle_capped = 1; }
  if (o.mode != M_IDLE && o.conns > fd_room) o.conns = (int)fd_room;

  nconns = o.mode == M_IDLE ? o.idle_n : o.conns;
  conns = calloc((size_t)nconns, sizeof *conns);
  hist = calloc(HIST_MAX, sizeof *hist);
  if (!conns || !hist) fatal("out of memory");
  for (int i = 0; i < nconns; i++) { conns[i].fd = -1; conns[i].id = (uint32_t)i & 0xffff; }
  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) fatal("epoll_create1: %s", strerror(errno));

  struct epoll_event evs[512];
  uint64_t t_start = now_ns();
  last_progress = t_start;

  /* ---------------- idle ---------------- */
  if (o.mode == M_IDLE) {
    open_target = o.idle_n;
    idle_open_more();
    uint64_t deadline = t_start + (uint64_t)(o.setup_max * 1e9);
    while ((inflight > 0 || opened < open_target) && !got_signal) {
      uint64_t now = now_ns();
      if (now > deadline) { note_error("setup took longer than %.0f s", o.setup_max); break; }
      if (now - last_progress > (uint64_t)(o.stall * 1e9)) { note_error("stalled: no reply for %.1f s", o.stall); break; }
      int n = epoll_wait(epfd, evs, 512, 10);
      now = now_ns();
      for (int i = 0; i < n; i++) {
        conn_t *c = &conns[evs[i].data.u64];
        if (c->fd < 0) continue;
        if (c->state == S_CONNECTING) { if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_connected(c); }
        else if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) on_readable(c, now);
        else if (evs[i].events & EPOLLOUT) conn_flush(c);
      }
    }
    double setup_s = (double)(now_ns() - t_start) / 1e9;
    printf("READY %d\n", held);
    fflush(stdout);
    /* hold: wait for stdin to close, a signal, or hold_max */
    struct epoll_event se = { .events = EPOLLIN | EPOLLHUP, .data.u64 = UINT64_MAX };
    int stdin_watch = epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &se) == 0;
    uint64_t hold_end = now_ns() + (uint64_t)(o.hold_max * 1e9);
    int stop = 0;
    while (!stop && !got_signal && now_ns() < hold_end) {
      int n = epoll_wait(epfd, evs, 512, 100);
      uint64_t now = now_ns();
      for (int i = 0; i < n; i++) {
        if (evs[i].data.u64 == UINT64_MAX) {
          char b[256];
          ssize_t r = read(0, b, sizeof b);
          if (r <= 0) stop = 1; /* EOF: the harness is done */
          continue;
        }
        conn_t *c = &conns[evs[i].data.u64];
        if (c->fd >= 0) on_readable(c, now);
      }
      (void)stdin_watch;
    }
    double hold_s = (double)(now_ns() - t_start) / 1e9 - setup_s;
    for (int i = 0; i < nconns; i++) if (conns[i].fd >= 0) conn_close(&conns[i]);
    printf("{\"mode\":\"idle\",\"ok\":%s,\"requested\":%d,\"capped_by_fd_limit\":%s,\"fd_limit\":%ld,"
           "\"target\":%d,\"held\":%d,\"dropped\":%llu,\"failed\":%llu,\"errors\":%llu,"
           "\"setup_s\":%.3f,\"hold_s\":%.3f,\"gen_cpu_s\":%.3f",
           held == open_target && dropped == 0 ? "true" : "false", idle_requested,
           idle_capped ? "true" : "false", (long)rl.rlim_cur, open_target, held,
           (unsigned long long)dropped, (unsigned long long)reconnects_failed,
           (unsigned long long)errors, setup_s, hold_s, self_cpu_s());
    if (first_error[0]) { printf(",\"first_error\":"); json_str(stdout, first_error); }
    printf("}\n");
    return held == open_target && dropped == 0 ? 0 : 1;
  }

  /* ---------------- rr, pipe, connect ---------------- */
  for (int i = 0; i < nconns; i++) {
    if (conn_open(&conns[i]) < 0) {
      if (o.mode == M_CONNECT) reconnects_failed++;
      else fatal("%s", first_error);
    }
  }
  uint64_t t_measure = t_start + (uint64_t)(o.warmup * 1e9);
  uint64_t t_end = t_measure + (uint64_t)(o.duration * 1e9);
  uint64_t t_win0 = 0, t_win1 = 0, t_drain_end = 0;
  double srv0 = -1, srv1 = -1, gen0 = 0, gen1 = 0;
  double each0[MAX_SERVER_PIDS], each1[MAX_SERVER_PIDS];
  mstat_t mach0 = { 0, 0, 0, 0 }, mach1 = { 0, 0, 0, 0 };

  while (phase != P_DONE) {
    uint64_t now = now_ns();
    if (got_signal) fatal("interrupted");
    if (phase == P_WARMUP && now >= t_measure) {
      phase = P_MEASURE; t_win0 = now_ns(); srv0 = servers_cpu_s(each0); gen0 = self_cpu_s(); mach0 = machine_cpu();
    }
    if (phase == P_MEASURE && now >= t_end) {
      t_win1 = now_ns(); srv1 = servers_cpu_s(each1); gen1 = self_cpu_s(); mach1 = machine_cpu();
      phase = P_DRAIN; t_drain_end = t_win1 + (uint64_t)(o.drain * 1e9);
      for (int i = 0; i < nconns; i++) {
        conn_t *c = &conns[i];
        if (c->fd < 0) continue;
        if ((o.mode == M_RR || o.mode == M_PIPE) && c->state == S_ACTIVE && c->rseq == c->sseq) conn_close(c);
      }
    }
    if (phase == P_DRAIN) {
      int open_n = 0;
      for (int i = 0; i < nconns; i++) if (conns[i].fd >= 0) open_n++;
      if (open_n == 0) { phase = P_DONE; break; }
      if (now >= t_drain_end) {
        note_error("%d connections still waiting for replies %.1f s after the end", open_n, o.drain);
        for (int i = 0; i < nconns; i++) if (conns[i].fd >= 0) conn_close(&conns[i]);
        phase = P_DONE; break;
      }
    }
    if (phase != P_DRAIN && now - last_progress > (uint64_t)(o.stall * 1e9))
      fatal("stalled: no reply for %.1f s (%llu lines answered in all)%s%s", o.stall,
            (unsigned long long)lines_total, first_error[0] ? "; first error: " : "", first_error);
    int n = epoll_wait(epfd, evs, 512, 5);
    if (n < 0 && errno != EINTR) fatal("epoll_wait: %s", strerror(errno));
    now = now_ns();
    for (int i = 0; i < n; i++) {
      conn_t *c = &conns[evs[i].data.u64];
      if (c->fd < 0) continue;
      uint32_t ev = evs[i].events;
      if (c->state == S_CONNECTING) { on_connected(c); continue; }
      if ((ev & EPOLLOUT) && conn_flush(c) < 0) continue;
      if (c->fd >= 0 && (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))) on_readable(c, now);
    }
    if (o.mode != M_CONNECT && errors > 0 && phase < P_DRAIN) fatal("%s", first_error);
  }

  double win = (double)(t_win1 - t_win0) / 1e9;
  if (win <= 0) fatal("no measurement window");
  double srv = (srv0 >= 0 && srv1 >= 0) ? srv1 - srv0 : -1;
  double gen = gen1 - gen0;
  uint64_t ops = o.mode == M_CONNECT ? conns_win : lines_win;
  printf("{\"mode\":\"%s\",\"ok\":%s,\"conns\":%d,\"depth\":%d,\"len\":%d,\"warmup_s\":%.3f,\"window_s\":%.4f,",
         mode_names[o.mode], errors == 0 ? "true" : "false",
         o.conns, o.mode == M_PIPE ? o.depth : 1, o.len, o.warmup, win);
  printf("\"lines\":%llu,\"lines_per_s\":%.1f,\"bytes_out\":%llu,\"bytes_in\":%llu,"
         "\"mb_out_per_s\":%.3f,\"mb_in_per_s\":%.3f,",
         (unsigned long long)lines_win, (double)lines_win / win, (unsigned long long)bytes_out_win,
         (unsigned long long)bytes_in_win, (double)bytes_out_win / win / 1e6, (double)bytes_in_win / win / 1e6);
  if (o.mode == M_CONNECT)
    printf("\"connections\":%llu,\"conns_per_s\":%.1f,", (unsigned long long)conns_win, (double)conns_win / win);
  if (hist_n)
    printf("\"lat_n\":%llu,\"p50_us\":%.0f,\"p90_us\":%.0f,\"p99_us\":%.0f,\"p999_us\":%.0f,\"max_us\":%llu,\"mean_us\":%.1f,",
           (unsigned long long)hist_n, hist_pct(0.50), hist_pct(0.90), hist_pct(0.99), hist_pct(0.999),
           (unsigned long long)hist_max_us, hist_sum_us / (double)hist_n);
  printf("\"gen_cpu_s\":%.4f,\"gen_cpu_share\":%.4f,", gen, gen / win);
  if (srv >= 0)
    printf("\"server_pid\":%d,\"server_cpu_s\":%.4f,\"server_cpu_share\":%.4f,\"server_cpu_us_per_op\":%.4f,",
           o.server_pid, srv, srv / win, ops ? srv * 1e6 / (double)ops : -1.0);
  if (srv >= 0 && n_server_pids > 1) {
    printf("\"server_pids\":[");
    for (int i = 0; i < n_server_pids; i++) printf("%s%d", i ? "," : "", server_pids[i]);
    printf("],\"server_cpu_share_each\":[");
    for (int i = 0; i < n_server_pids; i++) printf("%s%.4f", i ? "," : "", (each1[i] - each0[i]) / win);
    printf("],");
  }
  if (mach0.ok && mach1.ok)
    printf("\"machine_cores\":%ld,\"machine_busy_cores\":%.3f,\"machine_softirq_cores\":%.3f,\"machine_steal_cores\":%.3f,",
           sysconf(_SC_NPROCESSORS_ONLN), (mach1.busy - mach0.busy) / win, (mach1.softirq - mach0.softirq) / win,
           (mach1.steal - mach0.steal) / win);
  printf("\"errors\":%llu", (unsigned long long)errors);
  if (first_error[0]) { printf(",\"first_error\":"); json_str(stdout, first_error); }
  printf("}\n");
  return errors == 0 ? 0 : 1;
}
