#include "net/tls.h"

#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <openssl/err.h>

#include "core/config.h"

/* TLS 1.2 suites with forward secrecy and AEAD only; TLS 1.3 suites are OpenSSL's
 * defaults, all of which qualify. */
#define TLS_CIPHERS_12                                                                     \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                       \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                       \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                       \
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"

/* Certificates for a server name, from sni_dir. */
struct tls_sni {
	char *name;
	SSL_CTX *ctx;
};

struct tls_server {
	atomic_int refs; /* taken and dropped on every loop and on reload */
	SSL_CTX *ctx; /* default certificate */
	struct tls_sni *sni;
	size_t nsni;
};

static void tls_set_error(char **error_r, const char *what, const char *path)
{
	char ossl[256] = "";
	unsigned long e = ERR_peek_last_error();
	if (e != 0)
		ERR_error_string_n(e, ossl, sizeof(ossl));
	ERR_clear_error();
	if (error_r == NULL)
		return;
	if (asprintf(error_r, "%s %s%s%s", what, path, ossl[0] ? ": " : "", ossl) < 0)
		*error_r = NULL;
}

static int tls_on_servername(SSL *ssl, int *alert, void *arg)
{
	struct tls_server *tls = arg;
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	if (name == NULL)
		return SSL_TLSEXT_ERR_NOACK;
	for (size_t i = 0; i < tls->nsni; i++) {
		if (strcasecmp(tls->sni[i].name, name) == 0) {
			SSL_set_SSL_CTX(ssl, tls->sni[i].ctx);
			return SSL_TLSEXT_ERR_OK;
		}
	}
	/* unknown names get the default certificate */
	return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *tls_ctx_load(const char *cert, const char *key, char **error_r)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		tls_set_error(error_r, "cannot create TLS context for", cert);
		return NULL;
	}
	/* issue 3: TLS 1.2 minimum, no compression, no renegotiation */
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
					 SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_12) != 1) {
		tls_set_error(error_r, "bad cipher list for", cert);
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"hermod", 6);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		tls_set_error(error_r, "cannot load certificate", cert);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		tls_set_error(error_r, "cannot load private key", key);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_set_error(error_r, "private key does not match certificate", cert);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* sni_dir/<name>/fullchain.pem + privkey.pem (the layout certbot's live/ has). */
static int tls_load_sni(struct tls_server *tls, const char *dir, char **error_r)
{
	DIR *d = opendir(dir);
	if (d == NULL) {
		if (error_r != NULL && asprintf(error_r, "cannot open sni_dir %s: %s", dir,
						strerror(errno)) < 0)
			*error_r = NULL;
		return -1;
	}
	struct dirent *de;
	int ret = 1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char cert[4096], key[4096];
		struct stat stbuf;
		if (snprintf(cert, sizeof(cert), "%s/%s/fullchain.pem", dir, de->d_name) >=
			    (int)sizeof(cert) ||
		    snprintf(key, sizeof(key), "%s/%s/privkey.pem", dir, de->d_name) >=
			    (int)sizeof(key))
			continue;
		if (stat(cert, &stbuf) < 0)
			continue; /* not a certificate directory (e.g. certbot's README) */
		SSL_CTX *ctx = tls_ctx_load(cert, key, error_r);
		if (ctx == NULL) {
			ret = -1;
			break;
		}
		struct tls_sni *n = realloc(tls->sni, (tls->nsni + 1) * sizeof(*n));
		char *name = strdup(de->d_name);
		if (n == NULL || name == NULL) {
			free(name);
			if (n != NULL)
				tls->sni = n;
			SSL_CTX_free(ctx);
			ret = -1;
			break;
		}
		tls->sni = n;
		tls->sni[tls->nsni].name = name;
		tls->sni[tls->nsni].ctx = ctx;
		tls->nsni++;
	}
	closedir(d);
	return ret;
}

int tls_server_new(const struct config *cfg, struct tls_server **tls_r, char **error_r)
{
	*tls_r = NULL;
	if (cfg->tls_cert == NULL || cfg->tls_key == NULL)
		return 0;
	struct tls_server *tls = calloc(1, sizeof(*tls));
	if (tls == NULL)
		return -1;
	atomic_init(&tls->refs, 1);
	tls->ctx = tls_ctx_load(cfg->tls_cert, cfg->tls_key, error_r);
	if (tls->ctx == NULL || (cfg->tls_sni_dir != NULL &&
				 tls_load_sni(tls, cfg->tls_sni_dir, error_r) < 0)) {
		tls_server_unref(&tls);
		return -1;
	}
	SSL_CTX_set_tlsext_servername_callback(tls->ctx, tls_on_servername);
	SSL_CTX_set_tlsext_servername_arg(tls->ctx, tls);
	*tls_r = tls;
	return 1;
}

struct tls_server *tls_server_ref(struct tls_server *tls)
{
	if (tls != NULL)
		atomic_fetch_add_explicit(&tls->refs, 1, memory_order_relaxed);
	return tls;
}

void tls_server_unref(struct tls_server **tlsp)
{
	struct tls_server *tls = *tlsp;
	*tlsp = NULL;
	if (tls == NULL || atomic_fetch_sub_explicit(&tls->refs, 1, memory_order_acq_rel) > 1)
		return;
	for (size_t i = 0; i < tls->nsni; i++) {
		free(tls->sni[i].name);
		SSL_CTX_free(tls->sni[i].ctx);
	}
	free(tls->sni);
	if (tls->ctx != NULL)
		SSL_CTX_free(tls->ctx);
	free(tls);
}

SSL *tls_server_ssl_new(struct tls_server *tls)
{
	return SSL_new(tls->ctx);
}

int tls_channel_binding(SSL *ssl, unsigned char out[32])
{
	static const char label[] = "EXPORTER-Channel-Binding";
	int version = SSL_version(ssl);
	/* RFC 9266 3: TLS 1.2 only with the extended master secret */
	if (version < TLS1_2_VERSION || (version == TLS1_2_VERSION && !SSL_get_extms_support(ssl)))
		return 0;
	if (SSL_export_keying_material(ssl, out, 32, label, sizeof(label) - 1, NULL, 0, 0) != 1)
		return 0;
	return 1;
}

const char *tls_describe(SSL *ssl, char *buf, size_t bufsz)
{
	snprintf(buf, bufsz, "%s/%s", SSL_get_version(ssl), SSL_get_cipher_name(ssl));
	return buf;
}
