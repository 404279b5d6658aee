/* kelpie test tool: one static binary, several behaviours, for FROM-scratch test images.
 *   tool sleep                 sleep forever
 *   tool burn                  spin one CPU core forever
 *   tool hold <MiB> [ms]       wait <ms> milliseconds (default 0), allocate and touch <MiB> of memory,
 *                              print "ready", sleep forever
 *   tool exit <code> [ms]      wait <ms> milliseconds (default 0), then exit with <code>
 *   tool send <socket> <text>  connect to a Unix stream socket, send <text> as one length-prefixed
 *                              DogStatsD frame every 100 ms (at most 600 times), then sleep forever
 *   tool sendudp <port> <text> send <text>|c:<origin> to 127.0.0.1:<port> over UDP every 100 ms (at most
 *                              600 times), then sleep forever. <origin> is filled in the way Datadog's
 *                              client libraries do it: ci-<container id> when /proc/self/cgroup names the
 *                              container, else in-<inode of the process's cgroup directory> (private cgroup
 *                              namespace), from the unified hierarchy or cgroup v1's memory one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <unistd.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>

static void sleep_forever(void) { for (;;) pause(); }

static void msleep(long ms) {
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0) {}
}

/* The 64-hex container id at the end of a cgroup path segment (`<id>`, `docker-<id>.scope`), or NULL. */
static const char *id_in(const char *seg, size_t n) {
    if (n > 6 && !strncmp(seg + n - 6, ".scope", 6)) n -= 6;
    if (n < 64) return NULL;
    const char *id = seg + n - 64;
    if (id > seg && id[-1] != '-') return NULL;
    for (int i = 0; i < 64; i++) {
        char c = id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return NULL;
    }
    return id;
}

/* Writes the container field (without "c:") into out; empty when nothing is known. */
static void origin_field(char *out, size_t cap) {
    out[0] = 0;
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f) return;
    char line[4096], node[4096] = "", node_mount[64] = "";
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *c1 = strchr(line, ':'); if (!c1) continue;
        char *c2 = strchr(c1 + 1, ':'); if (!c2) continue;
        *c2 = 0;
        const char *controllers = c1 + 1, *path = c2 + 1;
        int v1_memory = !strcmp(controllers, "memory"), unified = controllers[0] == 0;
        if (!v1_memory && !unified) continue;
        const char *last = strrchr(path, '/');
        last = last ? last + 1 : path;
        const char *id = id_in(last, strlen(last));
        if (id) { snprintf(out, cap, "ci-%.64s", id); fclose(f); return; }
        if (v1_memory || node[0] == 0) {
            snprintf(node, sizeof node, "%s", path);
            snprintf(node_mount, sizeof node_mount, "%s", v1_memory ? "/sys/fs/cgroup/memory" : "/sys/fs/cgroup");
        }
    }
    fclose(f);
    if (!node_mount[0]) return;
    char dir[8192];
    snprintf(dir, sizeof dir, "%s%s", node_mount, strcmp(node, "/") ? node : "");
    struct stat st;
    if (stat(dir, &st) == 0 && st.st_ino > 2) snprintf(out, cap, "in-%llu", (unsigned long long)st.st_ino);
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: tool sleep|burn|hold|exit|send ...\n"); return 2; }
    const char *mode = argv[1];
    if (!strcmp(mode, "sleep")) sleep_forever();
    if (!strcmp(mode, "burn")) { volatile uint64_t x = 0; for (;;) x++; }
    if (!strcmp(mode, "hold") && argc >= 3) {
        if (argc >= 4) msleep(atol(argv[3]));
        size_t n = (size_t)atol(argv[2]) << 20;
        char *p = malloc(n);
        if (!p) { fprintf(stderr, "malloc failed\n"); return 1; }
        for (size_t i = 0; i < n; i += 4096) p[i] = (char)(i >> 12) | 1;
        printf("ready\n"); fflush(stdout);
        sleep_forever();
    }
    if (!strcmp(mode, "exit") && argc >= 3) {
        if (argc >= 4) msleep(atol(argv[3]));
        return atoi(argv[2]);
    }
    if (!strcmp(mode, "send") && argc >= 4) {
        struct sockaddr_un a; memset(&a, 0, sizeof a); a.sun_family = AF_UNIX;
        strncpy(a.sun_path, argv[2], sizeof a.sun_path - 1);
        int fd = -1;
        for (int i = 0; i < 100 && fd < 0; i++) {
            fd = socket(AF_UNIX, SOCK_STREAM, 0);
            if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) { close(fd); fd = -1; msleep(100); }
        }
        if (fd < 0) { perror("connect"); return 1; }
        uint32_t len = (uint32_t)strlen(argv[3]);
        unsigned char hdr[4] = { len & 0xff, (len >> 8) & 0xff, (len >> 16) & 0xff, (len >> 24) & 0xff };
        for (int i = 0; i < 600; i++) {
            if (write(fd, hdr, 4) != 4 || write(fd, argv[3], len) != (ssize_t)len) break;
            msleep(100);
        }
        sleep_forever();
    }
    if (!strcmp(mode, "sendudp") && argc >= 4) {
        char field[128], msg[8192];
        origin_field(field, sizeof field);
        snprintf(msg, sizeof msg, "%s%s%s", argv[3], field[0] ? "|c:" : "", field);
        printf("%s\n", msg); fflush(stdout);
        struct sockaddr_in a; memset(&a, 0, sizeof a); a.sin_family = AF_INET;
        a.sin_port = htons((uint16_t)atoi(argv[2]));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        if (fd < 0) { perror("socket"); return 1; }
        for (int i = 0; i < 600; i++) {
            sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&a, sizeof a);
            msleep(100);
        }
        sleep_forever();
    }
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}
