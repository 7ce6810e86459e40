// UDP blaster for bench/expression-cost.mjs: udp-blast-mmsg HOST PORT SECONDS FLOWS. FLOWS connected
// sockets, sendmmsg batches of 64 18-byte datagrams; prints the datagrams sent and the CPU
// ns per datagram (softirq work done in its context included).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/resource.h>
int main(int argc, char **argv) {
  int port = atoi(argv[2]); double secs = atof(argv[3]); int flows = atoi(argv[4]);
  int *fds = calloc(flows, sizeof(int));
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
  inet_pton(AF_INET, argv[1], &a.sin_addr);
  for (int i = 0; i < flows; i++) { fds[i] = socket(AF_INET, SOCK_DGRAM, 0); fcntl(fds[i], F_SETFL, O_NONBLOCK); connect(fds[i], (void *)&a, sizeof a); }
  char payload[18]; memset(payload, 'x', sizeof payload);
  struct mmsghdr msgs[64]; struct iovec iov = { payload, sizeof payload };
  memset(msgs, 0, sizeof msgs);
  for (int i = 0; i < 64; i++) { msgs[i].msg_hdr.msg_iov = &iov; msgs[i].msg_hdr.msg_iovlen = 1; }
  struct timespec t0, t; clock_gettime(CLOCK_MONOTONIC, &t0);
  long sent = 0;
  for (;;) {
    for (int i = 0; i < flows; i++) { int n = sendmmsg(fds[i], msgs, 64, 0); if (n > 0) sent += n; }
    clock_gettime(CLOCK_MONOTONIC, &t);
    if ((t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 >= secs) break;
  }
  struct rusage ru; getrusage(RUSAGE_SELF, &ru);
  double cpu = ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6 + ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
  printf("%ld %.0f\n", sent, cpu * 1e9 / (sent ? sent : 1));
  return 0;
}
