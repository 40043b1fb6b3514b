/*
 * basin's compiled thin client: what `basin run`, `ps`, `stop` and `rm` cost a user is this
 * program's start-up (~1 ms) instead of a Python interpreter's (~17 ms with site, ~7 without).
 *
 * It knows no options. It sends its argv, cwd and pid to the supervisor as one "cli" request
 * on the control FIFO; the supervisor parses the command line with the Python CLI's own
 * parsers and answers on our reply FIFO with frames (basin/supervisor/frames.py):
 *   o<len>\n<bytes>  to our stdout       e<len>\n<bytes>  to our stderr
 *   x<len>\n<code>   exit with <code>     F0\n            run the Python CLI instead
 * Anything else (another verb, no supervisor yet, a request that would not fit in one atomic
 * FIFO write, an argument that is not UTF-8) execs the Python CLI (BASIN_PYTHON running
 * basin.cli.main, as `python -m basin` does) with the same arguments: it starts the
 * supervisor, drives terminals, and has the last word.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef BASIN_PYTHON
#error "build with -DBASIN_PYTHON=\"/path/to/python3\" (see scripts/build-client)"
#endif

#define MAX_REQUEST 4096 /* PIPE_BUF: one write, never interleaved with another client's */
#define EXIT_BASIN 125

static const char *const VERBS[] = {"run", "ps", "stop", "rm", NULL};

static char reply_path[4096];
static volatile sig_atomic_t reply_linked;

static void unlink_reply(void) {
    if (reply_linked) {
        reply_linked = 0;
        unlink(reply_path);
    }
}

/* ^C, a hangup or a kill while we wait: take our FIFO with us, then die of the signal. */
static void on_signal(int sig) {
    unlink_reply();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void python_cli(char **argv) {
    unlink_reply();
    argv[0] = BASIN_PYTHON;
    int n = 0;
    while (argv[n]) n++;
    char **args = calloc((size_t)n + 3, sizeof(char *));
    if (args) {
        /* what `python -m basin` runs, without runpy's ~2 ms */
        args[0] = BASIN_PYTHON;
        args[1] = "-c";
        args[2] = "import sys; from basin.cli.main import main; sys.exit(main())";
        memcpy(args + 3, argv + 1, (size_t)n * sizeof(char *)); /* with the final NULL */
        execv(BASIN_PYTHON, args);
    }
    fprintf(stderr, "basin: cannot run %s: %s\n", BASIN_PYTHON, strerror(errno));
    exit(EXIT_BASIN);
}

static void fail(const char *msg) {
    unlink_reply();
    fprintf(stderr, "basin: %s\n", msg);
    exit(EXIT_BASIN);
}

/* --- the request: a JSON line ------------------------------------------------------------ */

struct buf {
    char data[MAX_REQUEST];
    size_t len;
    int full;
};

static void put(struct buf *b, const char *s, size_t n) {
    if (b->full || b->len + n > sizeof b->data) {
        b->full = 1;
        return;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

static void puts_raw(struct buf *b, const char *s) { put(b, s, strlen(s)); }

/* Well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF): json.loads on
 * the supervisor's side accepts exactly that. */
static int utf8_ok(const unsigned char *s) {
    while (*s) {
        unsigned c = *s;
        int more;
        unsigned min, cp;
        if (c < 0x80) {
            s++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            more = 1, min = 0x80, cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            more = 2, min = 0x800, cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            more = 3, min = 0x10000, cp = c & 0x07;
        } else {
            return 0;
        }
        s++;
        for (int i = 0; i < more; i++, s++) {
            if ((*s & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (*s & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    }
    return 1;
}

static void put_string(struct buf *b, const char *s) {
    put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\', esc[1] = (char)*p;
            put(b, esc, 2);
        } else if (*p < 0x20 || *p == 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            put(b, esc, 6);
        } else {
            put(b, (const char *)p, 1);
        }
    }
    put(b, "\"", 1);
}

/* --- the reply: frames --------------------------------------------------------------------- */

static void write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) { /* an O_NONBLOCK stdout we were given */
                struct pollfd pf = {.fd = fd, .events = POLLOUT};
                poll(&pf, 1, -1);
                continue;
            }
            if (errno == EPIPE) { /* `basin ps | head -1`: the reader has what it wanted */
                unlink_reply();
                exit(0);
            }
            return; /* stdout closed or broken otherwise: the output has nowhere to go */
        }
        p += w;
        n -= (size_t)w;
    }
}

static int supervisor_alive(const char *pidfile) {
    char text[32] = {0};
    int fd = open(pidfile, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    long pid = n > 0 ? strtol(text, NULL, 10) : 0;
    if (pid <= 0 || (kill((pid_t)pid, 0) != 0 && errno != EPERM)) return 0;
    /* a zombie is dead too: whoever inherited it may not have reaped it yet */
    char path[64], stat[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    n = read(fd, stat, sizeof stat - 1);
    close(fd);
    stat[n > 0 ? n : 0] = 0;
    char *end = strrchr(stat, ')');
    return !(end && end[1] == ' ' && (end[2] == 'Z' || end[2] == 'X'));
}

int main(int argc, char **argv) {
    if (argc < 2) python_cli(argv);
    int known = 0;
    for (int i = 0; VERBS[i]; i++) known |= strcmp(argv[1], VERBS[i]) == 0;
    if (!known) python_cli(argv);

    const char *run = getenv("BASIN_RUN");
    if (!run || !*run) run = "/run/basin";
    char control[4096], pidfile[4096], cwd[4096];
    snprintf(control, sizeof control, "%s/control", run);
    snprintf(pidfile, sizeof pidfile, "%s/supervisor.pid", run);
    if (!getcwd(cwd, sizeof cwd)) strcpy(cwd, "/");

    for (int i = 1; i < argc; i++)
        if (!utf8_ok((const unsigned char *)argv[i])) python_cli(argv);
    if (!utf8_ok((const unsigned char *)cwd)) strcpy(cwd, "/");

    /* no supervisor reading the control FIFO: the Python CLI starts one */
    int ctl = open(control, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (ctl < 0) python_cli(argv);
    /* a supervisor that was just killed: its main thread is a zombie already, but its other
     * threads, still exiting, hold the FIFO open for a moment */
    if (!supervisor_alive(pidfile)) python_cli(argv);

    unsigned char rnd[4] = {0};
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        memcpy(rnd, &ts.tv_nsec, sizeof rnd);
    }
    char name[64];
    snprintf(name, sizeof name, "%d-%02x%02x%02x%02x.fifo", (int)getpid(), rnd[0], rnd[1], rnd[2],
             rnd[3]);
    snprintf(reply_path, sizeof reply_path, "%s/replies/%s", run, name);

    struct buf req = {.len = 0, .full = 0};
    puts_raw(&req, "{\"op\": \"cli\", \"argv\": [");
    for (int i = 1; i < argc; i++) {
        if (i > 1) puts_raw(&req, ", ");
        put_string(&req, argv[i]);
    }
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    puts_raw(&req, "], \"pid\": ");
    puts_raw(&req, pid);
    puts_raw(&req, ", \"cwd\": ");
    put_string(&req, cwd);
    puts_raw(&req, ", \"reply\": ");
    put_string(&req, name);
    puts_raw(&req, "}\n");
    if (req.full) python_cli(argv); /* too long for one atomic write: the Python client says so */

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (mkfifo(reply_path, 0600) != 0) python_cli(argv);
    reply_linked = 1;
    int rfd = open(reply_path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (rfd < 0) python_cli(argv);
    ssize_t w = write(ctl, req.data, req.len);
    close(ctl);
    if (w != (ssize_t)req.len) python_cli(argv); /* a full FIFO: nothing was written */

    /* frame parser state */
    char kind = 0;
    char digits[24];
    size_t ndigits = 0;
    size_t want = 0;   /* payload bytes still to come */
    int in_payload = 0;
    char code[24];
    size_t ncode = 0;

    char chunk[65536];
    for (;;) {
        struct pollfd pf = {.fd = rfd, .events = POLLIN};
        int r = poll(&pf, 1, 500);
        if (r < 0) {
            if (errno == EINTR) continue;
            fail("cannot wait for the supervisor");
        }
        if (r == 0) {
            if (!supervisor_alive(pidfile)) fail("the supervisor died while handling the request");
            continue;
        }
        ssize_t n = read(rfd, chunk, sizeof chunk);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            fail("cannot read the supervisor's answer");
        }
        if (n == 0) { /* EOF without an exit code: did it die (its pid may linger a moment)? */
            for (int i = 0; i < 20 && supervisor_alive(pidfile); i++) usleep(10000);
            if (!supervisor_alive(pidfile)) fail("the supervisor died while handling the request");
            fail("the supervisor closed the request without an answer");
        }
        unlink_reply(); /* the supervisor has it open: the name is no longer needed */
        for (ssize_t i = 0; i < n;) {
            if (!in_payload) {
                char c = chunk[i++];
                if (!kind) {
                    kind = c;
                    ndigits = 0;
                } else if (c == '\n') {
                    digits[ndigits] = 0;
                    want = (size_t)strtoull(digits, NULL, 10);
                    in_payload = 1;
                    ncode = 0;
                } else if (ndigits < sizeof digits - 1 && c >= '0' && c <= '9') {
                    digits[ndigits++] = c;
                } else {
                    fail("garbled answer from the supervisor");
                }
            } else {
                size_t take = (size_t)(n - i) < want ? (size_t)(n - i) : want;
                if (kind == 'o') write_all(1, chunk + i, take);
                else if (kind == 'e') write_all(2, chunk + i, take);
                else if (kind == 'x' && ncode + take < sizeof code) {
                    memcpy(code + ncode, chunk + i, take);
                    ncode += take;
                }
                i += (ssize_t)take;
                want -= take;
            }
            if (in_payload && want == 0) {
                if (kind == 'x') {
                    code[ncode] = 0;
                    exit((int)strtol(code, NULL, 10));
                }
                if (kind == 'F') {
                    close(rfd);
                    python_cli(argv);
                }
                kind = 0;
                in_payload = 0;
            }
        }
    }
}
