/* The https: URI parser of src/delivery/https_client.c. */
#include <stdio.h>
#include <string.h>

#include "delivery/https_client.h"
#include "unit.h"

static void test_uri_valid(void)
{
	static const struct {
		const char *uri, *host;
		unsigned port;
		const char *path;
	} cases[] = {
	    {"https://reporting.example.com/v1/tlsrpt", "reporting.example.com", 443, "/v1/tlsrpt"},
	    {"https://R.Example.COM:8443/a?b=c", "r.example.com", 8443, "/a?b=c"},
	    {"https://example.com", "example.com", 443, "/"},
	    {"https://example.com.:1/", "example.com", 1, "/"},
	    {"HTTPS://example.com:65535/%41b", "example.com", 65535, "/%41b"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char host[HTTPS_HOST_MAX + 1], path[HTTPS_PATH_MAX + 1];
		unsigned port = 0;
		CHECK(https_uri_parse(cases[i].uri, host, &port, path) == 1);
		CHECK_STR(host, cases[i].host);
		CHECK(port == cases[i].port);
		CHECK_STR(path, cases[i].path);
	}
}

static void test_uri_invalid(void)
{
	static const char *const bad[] = {
	    "http://example.com/",     "https://",
	    "https:///path",           "https://user@example.com/",
	    "https://[::1]/",          "https://127.0.0.1/",
	    "https://example.com:0/",  "https://example.com:65536/",
	    "https://example.com:/",   "https://example.com:123456/",
	    "https://example.com#x",   "https://example.com/a#b",
	    "https://example.com/a b", "https://example.com/%4",
	    "https://example.com/%zz", "https://ex_ample.com/",
	    "https://-a.example/",     "https://example.com?x",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char host[HTTPS_HOST_MAX + 1], path[HTTPS_PATH_MAX + 1];
		unsigned port = 0;
		if (https_uri_parse(bad[i], host, &port, path) != -1)
			fprintf(stderr, "accepted: %s\n", bad[i]);
		CHECK(https_uri_parse(bad[i], host, &port, path) == -1);
	}
	/* the path's limit */
	char uri[HTTPS_PATH_MAX + 64], host[HTTPS_HOST_MAX + 1], path[HTTPS_PATH_MAX + 1];
	unsigned port = 0;
	strcpy(uri, "https://example.com/");
	size_t n = strlen(uri);
	memset(uri + n, 'a', HTTPS_PATH_MAX - 1);
	uri[n + HTTPS_PATH_MAX - 1] = '\0';
	CHECK(https_uri_parse(uri, host, &port, path) == 1);
	CHECK(strlen(path) == HTTPS_PATH_MAX);
	strcat(uri, "a");
	CHECK(https_uri_parse(uri, host, &port, path) == -1);
}

int main(void)
{
	test_uri_valid();
	test_uri_invalid();
	return unit_finish("https_client");
}
