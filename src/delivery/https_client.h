/* A small asynchronous HTTPS client on an event loop (docs/delivery.md): the
 * host resolved through hermod's resolver (A, then AAAA), a TLS connection to
 * the first address with SNI and the certificate verified for the host name,
 * one request (libevent's HTTP client on an OpenSSL bufferevent), redirects
 * not followed, a timeout on the whole exchange and a cap on the response
 * read. Nothing blocks the loop. */
#ifndef HERMOD_DELIVERY_HTTPS_CLIENT_H
#define HERMOD_DELIVERY_HTTPS_CLIENT_H

#include <stddef.h>

#include <openssl/ssl.h>

struct event_base;
struct dns_resolver;
struct https_request;

#define HTTPS_HOST_MAX 253
#define HTTPS_PATH_MAX 1024

/* A TLS client context verifying peers against ca_file (NULL: the system
 * store), TLS 1.2 at least. NULL with *error_r (malloc'd). */
SSL_CTX *https_ssl_ctx_new(const char *ca_file, char **error_r);

/* Parses "https://host[:port][/path]" strictly: a DNS name (lower-cased, no
 * IP literal, no userinfo), a port 1..65535 (default 443), the path (default
 * "/"; RFC 3986 path and query characters only, no fragment) of at most
 * HTTPS_PATH_MAX octets. 1 ok, -1 invalid. */
int https_uri_parse(const char *uri, char host[HTTPS_HOST_MAX + 1], unsigned *port_r,
                    char path[HTTPS_PATH_MAX + 1]);

struct https_request_params {
	struct event_base *base;
	struct dns_resolver *dns;
	SSL_CTX *ssl_ctx;
	const char *host; /* a DNS name: resolved, SNI, the certificate's name */
	unsigned port;
	const char *path;
	const char *method;       /* "GET" or "POST" */
	const char *content_type; /* POST: the body's type */
	const void *body;         /* POST: copied */
	size_t body_len;
	const char *accept;       /* NULL: no Accept header */
	const char *host_header;  /* NULL: host[:port] (the port when not 443) */
	unsigned timeout;         /* seconds, the whole exchange */
	size_t max_body;          /* responses over it fail */
	size_t max_headers;
};

struct https_response {
	int status;            /* HTTP status; 0 when there was no response */
	const char *ctype;     /* Content-Type or NULL */
	const char *body;      /* NUL-terminated, body_len octets */
	size_t body_len;
	const char *error;     /* status 0, or a body over max_body: why */
};

/* Called once on the loop (unless cancelled); res valid during the call. */
typedef void https_done(void *ctx, const struct https_response *res);

/* 1 started, -1 with *error_r (malloc'd); p's strings are copied. */
int https_request_start(const struct https_request_params *p, https_done *done, void *ctx,
                        struct https_request **r_r, char **error_r);
/* Stops a request: done is not called. NULL ok. */
void https_request_cancel(struct https_request **r);

#endif
