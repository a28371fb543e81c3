/* TLS for every protocol (OpenSSL 3): the server contexts, SNI, channel binding.
 * A struct tls_server is immutable once made; SIGHUP builds a new one and swaps it
 * in. Connections hold a reference, so one made before a reload keeps working.
 * References may be taken and dropped on any thread (the count is atomic). */
#ifndef HERMOD_NET_TLS_H
#define HERMOD_NET_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

struct config;
struct tls_server;

/* Loads [tls] cert/key (and sni_dir). Returns 1 with *tls_r set, 0 when no
 * certificate is configured (*tls_r NULL), -1 with *error_r naming the file. */
int tls_server_new(const struct config *cfg, struct tls_server **tls_r, char **error_r);
struct tls_server *tls_server_ref(struct tls_server *tls);
void tls_server_unref(struct tls_server **tls);

/* A new server-side SSL for one connection (NULL on failure). */
SSL *tls_server_ssl_new(struct tls_server *tls);

/* tls-exporter channel binding (RFC 9266): 32 bytes of keying material with the
 * label "EXPORTER-Channel-Binding". Only for TLS 1.3, or TLS 1.2 with the extended
 * master secret (RFC 7627). 1 ok, 0 unavailable. */
int tls_channel_binding(SSL *ssl, unsigned char out[32]);

/* "TLSv1.3/TLS_AES_128_GCM_SHA256" for logs and Received: headers. */
const char *tls_describe(SSL *ssl, char *buf, size_t bufsz);

#endif
