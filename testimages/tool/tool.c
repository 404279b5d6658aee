/* kelpie test tool: one static binary, several behaviours, for FROM-scratch test images.
 *   tool sleep                 sleep forever
 *   tool burn                  spin one CPU core forever
 *   tool hold <MiB>            allocate and touch <MiB> of memory, print "ready", sleep forever
 *   tool exit <code> [ms]      wait <ms> milliseconds (default 0), then exit with <code>
 *   tool send <socket> <text>  connect to a Unix stream socket, send <text> as one length-prefixed
 *                              DogStatsD frame every 100 ms (at most 600 times), then sleep forever
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <unistd.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/un.h>

static void sleep_forever(void) { for (;;) pause(); }

static void msleep(long ms) {
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0) {}
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: tool sleep|burn|hold|exit|send ...\n"); return 2; }
    const char *mode = argv[1];
    if (!strcmp(mode, "sleep")) sleep_forever();
    if (!strcmp(mode, "burn")) { volatile uint64_t x = 0; for (;;) x++; }
    if (!strcmp(mode, "hold") && argc >= 3) {
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
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}
