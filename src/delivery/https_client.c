/* The asynchronous HTTPS client (https_client.h). Steps, each started from the
 * previous one's callback on the loop: A (then AAAA) through the resolver, the
 * request on an OpenSSL bufferevent to that address, the answer evaluated from
 * an event of ours (the connection is never freed inside libevent's callback
 * stack). */
#include "delivery/https_client.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "core/str.h"
#include "dns/dns.h"

struct https_request {
	struct event_base *base;
	struct dns_resolver *dns;
	SSL_CTX *ssl_ctx;
	char host[HTTPS_HOST_MAX + 1];
	unsigned port;
	char path[HTTPS_PATH_MAX + 1];
	enum evhttp_cmd_type method;
	char *ctype_out, *accept, *host_header;
	char *body_out;
	size_t body_out_len;
	unsigned timeout;
	size_t max_body, max_headers;
	https_done *done;
	void *ctx;

	struct dns_query *dq;
	bool tried_aaaa;
	char addr[INET6_ADDRSTRLEN];
	struct event *timer, *finish;
	struct evhttp_connection *evcon;
	bool closing;
	bool answered; /* finish is active: later callbacks are ignored */
	int http_error; /* enum evhttp_request_error + 1; 0 none */
	bool connect_failed;
	bool too_long;
	int status;
	char ctype[128];
	bool have_ctype;
	char tls_error[128];
	char *body;
	size_t body_len;
	char error[HTTPS_HOST_MAX + 128];
};

/* ---- TLS ---- */

static int verify_cb(int ok, X509_STORE_CTX *x)
{
	if (!ok) {
		SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
		struct https_request *r = ssl != NULL ? SSL_get_app_data(ssl) : NULL;
		if (r != NULL && r->tls_error[0] == '\0')
			snprintf(r->tls_error, sizeof(r->tls_error), "certificate: %s",
			         X509_verify_cert_error_string(X509_STORE_CTX_get_error(x)));
	}
	return ok;
}

SSL_CTX *https_ssl_ctx_new(const char *ca_file, char **error_r)
{
	SSL_CTX *c = SSL_CTX_new(TLS_client_method());
	if (c == NULL) {
		str_error(error_r, "cannot create a TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
	SSL_CTX_set_verify(c, SSL_VERIFY_PEER, verify_cb);
	int ok = ca_file != NULL ? SSL_CTX_load_verify_locations(c, ca_file, NULL)
	                         : SSL_CTX_set_default_verify_paths(c);
	if (ok != 1) {
		if (error_r != NULL && asprintf(error_r, "cannot load the CA file %s",
		                                ca_file != NULL ? ca_file : "(system)") < 0)
			*error_r = NULL;
		ERR_clear_error();
		SSL_CTX_free(c);
		return NULL;
	}
	return c;
}

/* ---- the URI ---- */

static bool path_char(unsigned char c)
{
	/* RFC 3986 pchar, "/" and "?" (unreserved, sub-delims, ":", "@", "%") */
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("-._~!$&'()*+,;=:@%/?", c) != NULL;
}

int https_uri_parse(const char *uri, char host[HTTPS_HOST_MAX + 1], unsigned *port_r,
                    char path[HTTPS_PATH_MAX + 1])
{
	if (strncasecmp(uri, "https://", 8) != 0)
		return -1;
	const char *h = uri + 8, *p = h;
	while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
	       *p == '-' || *p == '.')
		p++;
	size_t hlen = (size_t)(p - h);
	if (hlen > 0 && h[hlen - 1] == '.')
		hlen--; /* a root dot */
	if (hlen == 0 || hlen > HTTPS_HOST_MAX)
		return -1;
	for (size_t i = 0; i < hlen; i++)
		host[i] = (char)(h[i] >= 'A' && h[i] <= 'Z' ? h[i] - 'A' + 'a' : h[i]);
	host[hlen] = '\0';
	if (dns_name_check(host) != 1)
		return -1;
	/* a host name: labels neither begin nor end with "-" (RFC 1123 2.1) */
	for (size_t i = 0; i < hlen; i++)
		if (host[i] == '-' && (i == 0 || host[i - 1] == '.' || i + 1 == hlen ||
		                       host[i + 1] == '.'))
			return -1;
	/* not an IPv4 literal: the certificate is checked for a name */
	struct in_addr a4;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return -1;
	unsigned port = 443;
	if (*p == ':') {
		p++;
		unsigned v = 0;
		int nd = 0;
		while (*p >= '0' && *p <= '9' && nd < 6) {
			v = v * 10 + (unsigned)(*p++ - '0');
			nd++;
		}
		if (nd == 0 || nd > 5 || v == 0 || v > 65535)
			return -1;
		port = v;
	}
	if (*p == '\0') {
		strcpy(path, "/");
	} else if (*p == '/') {
		size_t n = strlen(p);
		if (n > HTTPS_PATH_MAX)
			return -1;
		for (size_t i = 0; i < n; i++) {
			if (!path_char((unsigned char)p[i]))
				return -1;
			if (p[i] == '%' && (i + 2 >= n + 0 || !isxdigit((unsigned char)p[i + 1]) ||
			                    !isxdigit((unsigned char)p[i + 2])))
				return -1;
		}
		memcpy(path, p, n + 1);
	} else {
		return -1;
	}
	*port_r = port;
	return 1;
}

/* ---- the request's life ---- */

static void req_close(struct https_request *r)
{
	dns_cancel(&r->dq);
	if (r->timer != NULL)
		event_del(r->timer);
	if (r->finish != NULL)
		event_del(r->finish);
	if (r->evcon != NULL) {
		r->closing = true;
		evhttp_connection_free(r->evcon);
		r->evcon = NULL;
	}
}

static void req_free(struct https_request *r)
{
	req_close(r);
	if (r->timer != NULL)
		event_free(r->timer);
	if (r->finish != NULL)
		event_free(r->finish);
	free(r->ctype_out);
	free(r->accept);
	free(r->host_header);
	free(r->body_out);
	free(r->body);
	free(r);
}

static void req_end(struct https_request *r, const char *error)
{
	struct https_response res = {
	    .status = error == NULL ? r->status : 0,
	    .ctype = r->have_ctype ? r->ctype : NULL,
	    .body = r->body != NULL ? r->body : "",
	    .body_len = r->body != NULL ? r->body_len : 0,
	    .error = error,
	};
	req_close(r);
	r->done(r->ctx, &res);
	req_free(r);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct https_request *r = arg;
	snprintf(r->error, sizeof(r->error), "timed out after %u s", r->timeout);
	req_end(r, r->error);
}

static void note_tls_error(struct https_request *r)
{
	if (r->tls_error[0] != '\0' || r->evcon == NULL)
		return;
	struct bufferevent *bev = evhttp_connection_get_bufferevent(r->evcon);
	unsigned long e = bev != NULL ? bufferevent_get_openssl_error(bev) : 0;
	const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;
	if (reason != NULL)
		snprintf(r->tls_error, sizeof(r->tls_error), "TLS: %s", reason);
}

static void on_http_error(enum evhttp_request_error err, void *arg)
{
	struct https_request *r = arg;
	if (r->closing || r->answered)
		return;
	r->http_error = (int)err + 1;
	note_tls_error(r);
	/* libevent calls the response callback with NULL afterwards; make sure
	 * the evaluation runs anyway */
	r->answered = true;
	event_active(r->finish, 0, 0);
}

static void on_response(struct evhttp_request *req, void *arg)
{
	struct https_request *r = arg;
	if (r->closing || r->answered)
		return;
	r->answered = true;
	/* libevent 2.1 reports a failed connect (TCP or TLS handshake) with the
	 * request itself, response code 0, and no error callback */
	if (req != NULL && evhttp_request_get_response_code(req) == 0 && r->http_error == 0) {
		r->connect_failed = true;
		note_tls_error(r);
	}
	if (req != NULL && evhttp_request_get_response_code(req) != 0) {
		r->status = evhttp_request_get_response_code(req);
		const char *ct =
		    evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
		if (ct != NULL) {
			size_t k = 0;
			for (const char *c = ct; *c != '\0' && k + 1 < sizeof(r->ctype); c++)
				r->ctype[k++] = (*c >= 0x20 && *c < 0x7f) ? *c : '?';
			r->ctype[k] = '\0';
			r->have_ctype = true;
		}
		struct evbuffer *in = evhttp_request_get_input_buffer(req);
		size_t len = evbuffer_get_length(in);
		if (len > r->max_body) {
			r->too_long = true;
		} else if ((r->body = malloc(len + 1)) != NULL) {
			evbuffer_remove(in, r->body, len);
			r->body[len] = '\0';
			r->body_len = len;
		}
	}
	event_active(r->finish, 0, 0);
}

static const char *http_error_name(int e)
{
	switch (e - 1) {
	case EVREQ_HTTP_TIMEOUT:
		return "timed out";
	case EVREQ_HTTP_EOF:
		return "connection closed";
	case EVREQ_HTTP_INVALID_HEADER:
		return "invalid HTTP response";
	case EVREQ_HTTP_BUFFER_ERROR:
		return "connection failed";
	case EVREQ_HTTP_REQUEST_CANCEL:
		return "request cancelled";
	case EVREQ_HTTP_DATA_TOO_LONG:
		return "response over the size limit";
	}
	return "HTTP error";
}

static void on_finish(evutil_socket_t fd, short what, void *arg)
{
	struct https_request *r = arg;
	if (r->evcon != NULL) {
		r->closing = true;
		evhttp_connection_free(r->evcon);
		r->evcon = NULL;
	}
	if (r->tls_error[0] != '\0') {
		req_end(r, r->tls_error);
		return;
	}
	if (r->too_long || r->http_error - 1 == EVREQ_HTTP_DATA_TOO_LONG) {
		snprintf(r->error, sizeof(r->error), "response too large (limit %zu octets)",
		         r->max_body);
		req_end(r, r->error);
		return;
	}
	if (r->status == 0) {
		snprintf(r->error, sizeof(r->error),
		         strchr(r->addr, ':') != NULL ? "[%s]:%u: %s" : "%s:%u: %s", r->addr,
		         r->port, r->connect_failed ? "cannot connect" : http_error_name(r->http_error));
		req_end(r, r->error);
		return;
	}
	if (r->body == NULL) {
		req_end(r, "out of memory");
		return;
	}
	req_end(r, NULL);
}

static void http_start(struct https_request *r)
{
	struct bufferevent *bev = NULL;
	struct evhttp_request *req = NULL;
	SSL *ssl = SSL_new(r->ssl_ctx);

	if (ssl == NULL)
		goto fail;
	SSL_set_app_data(ssl, r);
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (SSL_set_tlsext_host_name(ssl, r->host) != 1 || SSL_set1_host(ssl, r->host) != 1) {
		SSL_free(ssl);
		goto fail;
	}
	bev = bufferevent_openssl_socket_new(r->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
	                                     BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		SSL_free(ssl);
		goto fail;
	}
	/* the body ends at the connection's end too: no close_notify needed */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	/* addr is an IP literal (our resolver answered): libevent resolves
	 * nothing itself */
	r->evcon = evhttp_connection_base_bufferevent_new(r->base, NULL, bev, r->addr,
	                                                  (unsigned short)r->port);
	if (r->evcon == NULL) {
		bufferevent_free(bev);
		goto fail;
	}
	evhttp_connection_set_max_body_size(r->evcon, (ev_ssize_t)r->max_body);
	evhttp_connection_set_max_headers_size(r->evcon, (ev_ssize_t)r->max_headers);
	evhttp_connection_set_timeout(r->evcon, (int)r->timeout);
	evhttp_connection_set_retries(r->evcon, 0);
	req = evhttp_request_new(on_response, r);
	if (req == NULL)
		goto fail;
	evhttp_request_set_error_cb(req, on_http_error);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	char hostport[HTTPS_HOST_MAX + 8];
	if (r->host_header != NULL)
		snprintf(hostport, sizeof(hostport), "%s", r->host_header);
	else if (r->port == 443)
		snprintf(hostport, sizeof(hostport), "%s", r->host);
	else
		snprintf(hostport, sizeof(hostport), "%s:%u", r->host, r->port);
	if (evhttp_add_header(h, "Host", hostport) != 0 ||
	    evhttp_add_header(h, "Connection", "close") != 0 ||
	    (r->accept != NULL && evhttp_add_header(h, "Accept", r->accept) != 0) ||
	    (r->ctype_out != NULL && evhttp_add_header(h, "Content-Type", r->ctype_out) != 0) ||
	    (r->method == EVHTTP_REQ_POST &&
	     evbuffer_add(evhttp_request_get_output_buffer(req), r->body_out, r->body_out_len) !=
	         0)) {
		evhttp_request_free(req);
		goto fail;
	}
	/* evhttp_make_request owns req from here, also when it fails */
	if (evhttp_make_request(r->evcon, req, r->method, r->path) != 0)
		goto fail;
	return;
fail:
	req_end(r, "cannot start the HTTPS request");
}

static void on_addr(void *arg, const struct dns_answer *a)
{
	struct https_request *r = arg;
	char *error = NULL;

	r->dq = NULL;
	if (a->status == DNS_OK && a->n > 0) {
		if (a->type == DNS_TYPE_A)
			inet_ntop(AF_INET, &a->a[0], r->addr, sizeof(r->addr));
		else
			inet_ntop(AF_INET6, &a->aaaa[0], r->addr, sizeof(r->addr));
		http_start(r);
		return;
	}
	if (a->type == DNS_TYPE_A && a->status != DNS_TEMPFAIL && !r->tried_aaaa) {
		r->tried_aaaa = true;
		if (dns_lookup(r->dns, r->host, DNS_TYPE_AAAA, on_addr, r, &r->dq, &error) < 0) {
			snprintf(r->error, sizeof(r->error), "%s: %s", r->host,
			         error != NULL ? error : "?");
			free(error);
			req_end(r, r->error);
		}
		return;
	}
	snprintf(r->error, sizeof(r->error), "%s: %s", r->host,
	         a->status == DNS_TEMPFAIL ? (a->why != NULL ? a->why : "DNS failure")
	                                   : "no address");
	req_end(r, r->error);
}

int https_request_start(const struct https_request_params *p, https_done *done, void *ctx,
                        struct https_request **r_r, char **error_r)
{
	struct https_request *r = calloc(1, sizeof(*r));
	char *error = NULL;

	if (r_r != NULL)
		*r_r = NULL;
	if (r == NULL) {
		str_error(error_r, "out of memory");
		return -1;
	}
	r->base = p->base;
	r->dns = p->dns;
	r->ssl_ctx = p->ssl_ctx;
	r->port = p->port != 0 ? p->port : 443;
	r->method = p->method != NULL && strcmp(p->method, "POST") == 0 ? EVHTTP_REQ_POST
	                                                                 : EVHTTP_REQ_GET;
	r->timeout = p->timeout != 0 ? p->timeout : 60;
	r->max_body = p->max_body;
	r->max_headers = p->max_headers != 0 ? p->max_headers : 16384;
	r->done = done;
	r->ctx = ctx;
	if (strlen(p->host) > HTTPS_HOST_MAX || strlen(p->path) > HTTPS_PATH_MAX ||
	    p->path[0] != '/') {
		str_error(error_r, "invalid HTTPS host or path");
		free(r);
		return -1;
	}
	strcpy(r->host, p->host);
	strcpy(r->path, p->path);
	if ((p->content_type != NULL && (r->ctype_out = strdup(p->content_type)) == NULL) ||
	    (p->accept != NULL && (r->accept = strdup(p->accept)) == NULL) ||
	    (p->host_header != NULL && (r->host_header = strdup(p->host_header)) == NULL) ||
	    (p->body_len > 0 && (r->body_out = malloc(p->body_len)) == NULL) ||
	    (r->timer = evtimer_new(r->base, on_timer, r)) == NULL ||
	    (r->finish = event_new(r->base, -1, 0, on_finish, r)) == NULL) {
		req_free(r);
		str_error(error_r, "out of memory");
		return -1;
	}
	if (p->body_len > 0)
		memcpy(r->body_out, p->body, p->body_len);
	r->body_out_len = p->body_len;
	struct timeval tv = {(time_t)r->timeout, 0};
	evtimer_add(r->timer, &tv);
	if (dns_lookup(r->dns, r->host, DNS_TYPE_A, on_addr, r, &r->dq, &error) < 0) {
		req_free(r);
		if (error_r != NULL)
			*error_r = error;
		else
			free(error);
		return -1;
	}
	if (r_r != NULL)
		*r_r = r;
	return 1;
}

void https_request_cancel(struct https_request **rp)
{
	if (rp == NULL || *rp == NULL)
		return;
	req_free(*rp);
	*rp = NULL;
}
