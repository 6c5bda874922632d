/*
 * sigreader: a reader that does what a program under signals does, with
 * raw system calls that never retry EINTR (as programs reading regular
 * files do not). Built by the e2e tests with the system's C compiler.
 *
 *   sigreader pressure INTERVAL_US PATH...
 *     A SIGALRM every INTERVAL_US microseconds (setitimer, a handler
 *     installed with SA_RESTART, as git's progress timer does). For each
 *     PATH: stat, open, pread 4 ranges (start, 1/3, 2/3, end), close.
 *     Prints one line per read: "R <path-index> <offset> <hex bytes>",
 *     one per failed call: "E <path-index> <call> <errno name>", then
 *     "S calls=<n> eintr=<n> errors=<n> signals=<n>".
 *
 *   sigreader direct PATH OFFSET LENGTH
 *     Default signal dispositions (no handler for anything). Opens PATH
 *     with O_DIRECT (so the read is one synchronous FUSE request at a
 *     time, not page-cache readahead), prints "reading" and blocks in
 *     pread; prints "done <n>" or "error <errno name>".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

static volatile sig_atomic_t signals;
static long calls, eintr, errors;

static void on_alarm(int sig) { (void)sig; signals++; }

static void failed(int i, const char *call) {
	errors++;
	if (errno == EINTR)
		eintr++;
	printf("E %d %s %s\n", i, call, strerrorname_np(errno) ? strerrorname_np(errno) : "?");
}

static int pressure(long interval_us, int n, char **paths) {
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGALRM, &sa, NULL) != 0) {
		perror("sigaction");
		return 2;
	}
	struct itimerval it = {{0, interval_us}, {0, interval_us}};
	if (setitimer(ITIMER_REAL, &it, NULL) != 0) {
		perror("setitimer");
		return 2;
	}
	unsigned char buf[256];
	for (int i = 0; i < n; i++) {
		struct stat st;
		calls++;
		if (stat(paths[i], &st) != 0) {
			failed(i, "stat");
			continue;
		}
		calls++;
		int fd = open(paths[i], O_RDONLY);
		if (fd < 0) {
			failed(i, "open");
			continue;
		}
		off_t size = st.st_size, len = size < (off_t)sizeof buf ? size : (off_t)sizeof buf;
		off_t offs[4] = {0, size / 3, 2 * size / 3, size - len};
		for (int k = 0; k < 4; k++) {
			calls++;
			ssize_t got = pread(fd, buf, len, offs[k]);
			if (got < 0) {
				failed(i, "pread");
				continue;
			}
			printf("R %d %lld ", i, (long long)offs[k]);
			for (ssize_t j = 0; j < got; j++)
				printf("%02x", buf[j]);
			printf("\n");
		}
		calls++;
		if (close(fd) != 0)
			failed(i, "close");
	}
	struct itimerval off = {{0, 0}, {0, 0}};
	setitimer(ITIMER_REAL, &off, NULL);
	printf("S calls=%ld eintr=%ld errors=%ld signals=%ld\n", calls, eintr, errors, (long)signals);
	return 0;
}

static int direct(const char *path, long long off, long long len) {
	int fd = open(path, O_RDONLY | O_DIRECT);
	if (fd < 0) {
		printf("error open %s\n", strerrorname_np(errno));
		return 1;
	}
	void *buf;
	if (posix_memalign(&buf, 1 << 20, len) != 0)
		return 2;
	printf("reading\n");
	fflush(stdout);
	ssize_t got = pread(fd, buf, len, off);
	if (got < 0)
		printf("error %s\n", strerrorname_np(errno));
	else
		printf("done %zd\n", got);
	return 0;
}

int main(int argc, char **argv) {
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	if (argc >= 3 && strcmp(argv[1], "pressure") == 0)
		return pressure(atol(argv[2]), argc - 3, argv + 3);
	if (argc == 5 && strcmp(argv[1], "direct") == 0)
		return direct(argv[2], atoll(argv[3]), atoll(argv[4]));
	fprintf(stderr, "usage: sigreader pressure INTERVAL_US PATH... | direct PATH OFFSET LENGTH\n");
	return 2;
}
