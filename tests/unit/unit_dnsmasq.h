/* For unit tests that need a DNS server: Debian's dnsmasq on a loopback port,
 * with the records the test gives, nothing else (every other name NXDOMAIN).
 * Header-only, one server per test program. */
#ifndef HERMOD_TESTS_UNIT_DNSMASQ_H
#define HERMOD_TESTS_UNIT_DNSMASQ_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t unit_dnsmasq_pid;

/* A port free for both TCP and UDP on 127.0.0.1, or -1. */
static int unit_free_port(void)
{
	for (int tries = 0; tries < 50; tries++) {
		struct sockaddr_in sa = {.sin_family = AF_INET,
		                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		socklen_t sl = sizeof(sa);
		int t = socket(AF_INET, SOCK_STREAM, 0), u = socket(AF_INET, SOCK_DGRAM, 0);
		int port = -1;
		if (t >= 0 && u >= 0 && bind(t, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
		    getsockname(t, (struct sockaddr *)&sa, &sl) == 0 &&
		    bind(u, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			port = ntohs(sa.sin_port);
		close(t);
		close(u);
		if (port > 0)
			return port;
	}
	return -1;
}

/* Starts dnsmasq on 127.0.0.1:port (TTL 60) with records[0..n) (its options,
 * "--host-record=..." etc.) and waits until it has the port. 1 ok, -1. */
static int unit_dnsmasq_start(int port, const char *const *records, size_t n)
{
	char portarg[32];
	const char *argv[32];
	size_t k = 0;
	static const char *const base[] = {
	    "dnsmasq",           "--keep-in-foreground",  "--no-resolv",
	    "--no-hosts",        "--conf-file=/dev/null", "--listen-address=127.0.0.1",
	    "--bind-interfaces", "--local-ttl=60",        "--user=root",
	    "--pid-file=",       "--address=/#/"};
	if (n + sizeof(base) / sizeof(base[0]) + 2 > sizeof(argv) / sizeof(argv[0]))
		return -1;
	snprintf(portarg, sizeof(portarg), "--port=%d", port);
	for (size_t i = 0; i < sizeof(base) / sizeof(base[0]); i++)
		argv[k++] = base[i];
	argv[k++] = portarg;
	for (size_t i = 0; i < n; i++)
		argv[k++] = records[i];
	argv[k] = NULL;
	unit_dnsmasq_pid = fork();
	if (unit_dnsmasq_pid < 0)
		return -1;
	if (unit_dnsmasq_pid == 0) {
		execv("/usr/sbin/dnsmasq", (char *const *)argv);
		_exit(127);
	}
	/* answering? a few tries of a real lookup follow in the tests; wait for
	 * the UDP port to be taken */
	for (int i = 0; i < 200; i++) {
		struct sockaddr_in sa = {.sin_family = AF_INET,
		                         .sin_port = htons((uint16_t)port),
		                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		int u = socket(AF_INET, SOCK_DGRAM, 0);
		int taken = bind(u, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno == EADDRINUSE;
		close(u);
		if (taken)
			return 1;
		if (waitpid(unit_dnsmasq_pid, NULL, WNOHANG) == unit_dnsmasq_pid)
			return -1;
		usleep(20000);
	}
	return -1;
}

static void unit_dnsmasq_stop(void)
{
	if (unit_dnsmasq_pid > 0) {
		kill(unit_dnsmasq_pid, SIGTERM);
		waitpid(unit_dnsmasq_pid, NULL, 0);
		unit_dnsmasq_pid = 0;
	}
}

#endif
