/* Unit tests for src/core/config.c: value parsers, a full valid file, defaults, and
 * every error kind with its exact "FILE:LINE: message". */
#include "auth/sasl.h"
#include "core/config.h"
#include "unit.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

/* Loads text under the name "t.conf"; returns the result, fills cfg/err. */
static int load(const char *text, struct config **cfg, char **err)
{
	return config_load_string("t.conf", text, strlen(text), cfg, err);
}

/* Expects text to fail with exactly want. */
static void expect_error(const char *text, const char *want)
{
	struct config *cfg = NULL;
	char *err = NULL;
	int ret = load(text, &cfg, &err);
	CHECK(ret == -1);
	CHECK(cfg == NULL);
	CHECK_STR(err, want);
	if (err == NULL || strcmp(err, want) != 0)
		fprintf(stderr, "  input was:\n%s\n", text);
	free(err);
	config_free(&cfg);
}

static void test_parse_size(void)
{
	static const struct {
		const char *in;
		int ret;
		uint64_t val;
	} cases[] = {
	    {"0", 1, 0},
	    {"10", 1, 10},
	    {"10K", 1, 10240},
	    {"10k", 1, 10240},
	    {"50M", 1, 50ULL * 1024 * 1024},
	    {"1G", 1, 1024ULL * 1024 * 1024},
	    {"18446744073709551615", 1, UINT64_MAX},
	    {"18446744073709551616", -1, 0},
	    {"99999999999999999999G", -1, 0},
	    {"17179869184G", -1, 0}, /* 2^34 G = 2^64 */
	    {"17179869183G", 1, 17179869183ULL * 1024 * 1024 * 1024},
	    {"", -1, 0},
	    {"K", -1, 0},
	    {"12Q", -1, 0},
	    {"10KB", -1, 0},
	    {"-1", -1, 0},
	    {"+1", -1, 0},
	    {" 1", -1, 0},
	    {"1 ", -1, 0},
	    {"1.5M", -1, 0},
	    {"1T", -1, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 12345;
		int ret = config_parse_size(cases[i].in, &v);
		CHECK(ret == cases[i].ret);
		if (ret != cases[i].ret)
			fprintf(stderr, "  size '%s'\n", cases[i].in);
		if (ret == 1)
			CHECK(v == cases[i].val);
	}
}

static void test_parse_duration(void)
{
	static const struct {
		const char *in;
		int ret;
		unsigned val;
	} cases[] = {
	    {"0", 1, 0},
	    {"30", 1, 30},
	    {"30s", 1, 30},
	    {"5m", 1, 300},
	    {"2h", 1, 7200},
	    {"5d", 1, 432000},
	    {"4294967295", 1, UINT_MAX},
	    {"4294967296", -1, 0},
	    {"49710d", 1, 49710u * 86400u},
	    {"49711d", -1, 0}, /* > UINT_MAX seconds */
	    {"99999999999999999999d", -1, 0},
	    {"99999999999999999999", -1, 0},
	    {"", -1, 0},
	    {"m", -1, 0},
	    {"5M", -1, 0},
	    {"5w", -1, 0},
	    {"5mm", -1, 0},
	    {"1h30m", -1, 0},
	    {"-5", -1, 0},
	    {"5 m", -1, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned v = 12345;
		int ret = config_parse_duration(cases[i].in, &v);
		CHECK(ret == cases[i].ret);
		if (ret != cases[i].ret)
			fprintf(stderr, "  duration '%s'\n", cases[i].in);
		if (ret == 1)
			CHECK(v == cases[i].val);
	}
}

static void test_parse_bool(void)
{
	static const struct {
		const char *in;
		int ret;
		bool val;
	} cases[] = {
	    {"yes", 1, true}, {"no", 1, false},    {"true", 1, true},   {"false", 1, false},
	    {"on", 1, true},  {"off", 1, false},   {"1", 1, true},      {"0", 1, false},
	    {"YES", 1, true}, {"Off", 1, false},   {"", -1, false},     {"y", -1, false},
	    {"2", -1, false}, {"yess", -1, false}, {"yes ", -1, false}, {"enable", -1, false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool v = !cases[i].val;
		int ret = config_parse_bool(cases[i].in, &v);
		CHECK(ret == cases[i].ret);
		if (ret != cases[i].ret)
			fprintf(stderr, "  bool '%s'\n", cases[i].in);
		if (ret == 1)
			CHECK(v == cases[i].val);
	}
}

static void test_parse_hostport(void)
{
	static const struct {
		const char *in;
		int ret;
		const char *host;
		unsigned port;
	} cases[] = {
	    {"127.0.0.1:25", 1, "127.0.0.1", 25},
	    {"0.0.0.0:2525", 1, "0.0.0.0", 2525},
	    {"localhost:1", 1, "localhost", 1},
	    {"mail.example.test:65535", 1, "mail.example.test", 65535},
	    {"[::1]:143", 1, "::1", 143},
	    {"[::]:993", 1, "::", 993},
	    {"[2001:db8::25]:587", 1, "2001:db8::25", 587},
	    {"[::ffff:127.0.0.1]:25", 1, "::ffff:127.0.0.1", 25},
	    {"127.0.0.1:0", -1, NULL, 0},
	    {"127.0.0.1:65536", -1, NULL, 0},
	    {"127.0.0.1:99999999999999999999999", -1, NULL, 0},
	    {"127.0.0.1:-1", -1, NULL, 0},
	    {"127.0.0.1:+25", -1, NULL, 0},
	    {"127.0.0.1:25x", -1, NULL, 0},
	    {"127.0.0.1: 25", -1, NULL, 0},
	    {"127.0.0.1:", -1, NULL, 0},
	    {"127.0.0.1", -1, NULL, 0},
	    {":25", -1, NULL, 0},
	    {"::1:25", -1, NULL, 0},
	    {"[::1]25", -1, NULL, 0},
	    {"[::1]", -1, NULL, 0},
	    {"[]:25", -1, NULL, 0},
	    {"[127.0.0.1]:25", -1, NULL, 0},
	    {"[::1:25", -1, NULL, 0},
	    {"[fe80::1%eth0]:25", -1, NULL, 0},
	    {"host name:25", -1, NULL, 0},
	    {"a..b:25", -1, NULL, 0},
	    {".a:25", -1, NULL, 0},
	    {"", -1, NULL, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *host = (char *)"junk";
		unsigned port = 7;
		int ret = config_parse_hostport(cases[i].in, &host, &port);
		CHECK(ret == cases[i].ret);
		if (ret != cases[i].ret)
			fprintf(stderr, "  hostport '%s'\n", cases[i].in);
		if (ret == 1) {
			CHECK_STR(host, cases[i].host);
			CHECK(port == cases[i].port);
		} else {
			CHECK(host == NULL);
		}
		free(ret == 1 ? host : NULL);
	}
	/* validate-only form */
	CHECK(config_parse_hostport("[::1]:25", NULL, NULL) == 1);
	CHECK(config_parse_hostport("[::1]:0", NULL, NULL) == -1);
}

static void test_parse_retry(void)
{
	unsigned s[CONFIG_RETRY_MAX];
	size_t n = 0;
	CHECK(config_parse_retry_schedule("5m,15m,30m,1h,2h,4h", s, CONFIG_RETRY_MAX, &n) == 1);
	CHECK(n == 6 && s[0] == 300 && s[1] == 900 && s[3] == 3600 && s[5] == 14400);
	CHECK(config_parse_retry_schedule(" 30 , 1m,\t2h ", s, CONFIG_RETRY_MAX, &n) == 1);
	CHECK(n == 3 && s[0] == 30 && s[1] == 60 && s[2] == 7200);
	CHECK(config_parse_retry_schedule("1d", s, CONFIG_RETRY_MAX, &n) == 1);
	CHECK(n == 1 && s[0] == 86400);
	static const char *const bad[] = {
	    "",  ",",     "5m,",   ",5m", "5m,,1h",
	    "0", "5m,0s", "5m 1h", "5x",  "99999999999999999999999999999999999"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int ret = config_parse_retry_schedule(bad[i], s, CONFIG_RETRY_MAX, &n);
		CHECK(ret == -1);
		if (ret != -1)
			fprintf(stderr, "  retry '%s'\n", bad[i]);
	}
	CHECK(config_parse_retry_schedule("1,2,3", s, 2, &n) == -1);
	CHECK(config_parse_retry_schedule("1,2", s, 2, &n) == 1 && n == 2);
}

static void test_default_path(void)
{
	unsetenv("HERMOD_CONFIG");
	CHECK_STR(config_default_path(NULL), CONFIG_DEFAULT_PATH);
	CHECK_STR(config_default_path("x.conf"), "x.conf");
	setenv("HERMOD_CONFIG", "/tmp/env.conf", 1);
	CHECK_STR(config_default_path(NULL), "/tmp/env.conf");
	CHECK_STR(config_default_path("x.conf"), "x.conf");
	setenv("HERMOD_CONFIG", "", 1);
	CHECK_STR(config_default_path(NULL), CONFIG_DEFAULT_PATH);
	unsetenv("HERMOD_CONFIG");
}

static const char full_config[] = "\xEF\xBB\xBF; hermod test config\r\n"
                                  "# every key set\n"
                                  "[server]\n"
                                  "hostname = mx.example.test\n"
                                  "data_dir = /var/lib/hermod\n"
                                  "user = hermod\n"
                                  "log_level = debug\n"
                                  "\n"
                                  "[listen]\n"
                                  "smtp = 127.0.0.1:2525 ; inline comment\n"
                                  "  submission = [::1]:587\n"
                                  "submissions = 0.0.0.0:465\n"
                                  "imap = localhost:143\n"
                                  "imaps = [::]:993\n"
                                  "pop3 =\n"
                                  "pop3s = 127.0.0.1:995\n"
                                  "http = 127.0.0.1:8080\n"
                                  "[tls]\n"
                                  "cert = /etc/hermod/cert.pem\n"
                                  "key = /etc/hermod/key.pem\n"
                                  "[auth]\n"
                                  "allow_plaintext_on_loopback = yes\n"
                                  "mechanisms = PLAIN, scram-sha-256-plus\n"
                                  "[limits]\n"
                                  "max_message_size = 10M\n"
                                  "max_recipients = 50\n"
                                  "max_connections = 500\n"
                                  "max_connections_per_ip = 5\n"
                                  "max_errors = 3\n"
                                  "max_line_length = 0\n"
                                  "strict_line_length = yes\n"
                                  "idle_timeout = 2m\n"
                                  "command_timeout = 30s\n"
                                  "data_timeout = 1h\n"
                                  "message_timeout = 2h\n"
                                  "shutdown_timeout = 0\n"
                                  "[store]\n"
                                  "backend = sqlite\n"
                                  "fsync = off\n"
                                  "workers = 4\n"
                                  "[delivery]\n"
                                  "remote_port = 2526\n"
                                  "smarthost = relay.example.test:587\n"
                                  "retry_schedule = 1m, 10m, 1h\n"
                                  "expiry = 2d\n"
                                  "[dns]\n"
                                  "resolver = 127.0.0.1:5353\n"
                                  "trust_anchor = /etc/hermod/test.key\n";

static void test_full(void)
{
	struct config *cfg = NULL;
	char *err = NULL;
	int ret = load(full_config, &cfg, &err);
	CHECK(ret == 1);
	CHECK(err == NULL);
	if (err != NULL)
		fprintf(stderr, "  error: %s\n", err);
	free(err);
	if (cfg == NULL)
		return;
	CHECK_STR(cfg->path, "t.conf");
	CHECK_STR(cfg->hostname, "mx.example.test");
	CHECK_STR(cfg->data_dir, "/var/lib/hermod");
	CHECK_STR(cfg->user, "hermod");
	CHECK_STR(cfg->log_level, "debug");
	CHECK_STR(cfg->listen_smtp, "127.0.0.1:2525");
	CHECK_STR(cfg->listen_submission, "[::1]:587");
	CHECK_STR(cfg->listen_submissions, "0.0.0.0:465");
	CHECK_STR(cfg->listen_imap, "localhost:143");
	CHECK_STR(cfg->listen_imaps, "[::]:993");
	CHECK(cfg->listen_pop3 == NULL);
	CHECK_STR(cfg->listen_pop3s, "127.0.0.1:995");
	CHECK_STR(cfg->listen_http, "127.0.0.1:8080");
	CHECK_STR(cfg->tls_cert, "/etc/hermod/cert.pem");
	CHECK_STR(cfg->tls_key, "/etc/hermod/key.pem");
	CHECK(cfg->auth_allow_plaintext_on_loopback == true);
	CHECK(cfg->auth_mechanisms == (SASL_MECH_BIT(SASL_MECH_PLAIN) |
	                               SASL_MECH_BIT(SASL_MECH_SCRAM_SHA_256_PLUS)));
	CHECK(cfg->max_message_size == 10 * 1024 * 1024);
	CHECK(cfg->max_recipients == 50);
	CHECK(cfg->max_connections == 500);
	CHECK(cfg->max_connections_per_ip == 5);
	CHECK(cfg->max_errors == 3);
	CHECK(cfg->max_line_length == 0);
	CHECK(cfg->strict_line_length == true);
	CHECK(cfg->idle_timeout == 120);
	CHECK(cfg->command_timeout == 30);
	CHECK(cfg->data_timeout == 3600);
	CHECK(cfg->message_timeout == 7200);
	CHECK(cfg->shutdown_timeout == 0);
	CHECK_STR(cfg->store_backend, "sqlite");
	CHECK(cfg->store_fsync == false);
	CHECK(cfg->store_workers == 4);
	CHECK(cfg->remote_port == 2526);
	CHECK_STR(cfg->smarthost, "relay.example.test:587");
	CHECK_STR(cfg->retry_schedule, "1m, 10m, 1h");
	CHECK(cfg->expiry == 2 * 86400);
	CHECK_STR(cfg->resolver, "127.0.0.1:5353");
	CHECK_STR(cfg->dns_trust_anchor, "/etc/hermod/test.key");
	config_free(&cfg);
	CHECK(cfg == NULL);
	config_free(&cfg); /* NULL is fine */
}

static void test_defaults(void)
{
	struct config *cfg = NULL;
	char *err = NULL;
	CHECK(load("[server]\ndata_dir = /d\n", &cfg, &err) == 1);
	CHECK(err == NULL);
	free(err);
	if (cfg == NULL)
		return;
	char host[HOST_NAME_MAX + 1] = "";
	gethostname(host, sizeof(host) - 1);
	CHECK(cfg->hostname != NULL && cfg->hostname[0] != '\0');
	if (host[0] != '\0')
		CHECK_STR(cfg->hostname, host);
	CHECK_STR(cfg->data_dir, "/d");
	CHECK(cfg->user == NULL);
	CHECK_STR(cfg->log_level, "info");
	CHECK(cfg->listen_smtp == NULL && cfg->listen_submission == NULL &&
	      cfg->listen_submissions == NULL && cfg->listen_imap == NULL &&
	      cfg->listen_imaps == NULL && cfg->listen_pop3 == NULL && cfg->listen_pop3s == NULL &&
	      cfg->listen_http == NULL);
	CHECK(cfg->tls_cert == NULL && cfg->tls_key == NULL);
	CHECK(cfg->auth_allow_plaintext_on_loopback == false);
	CHECK(cfg->auth_mechanisms == SASL_MECHS_DEFAULT);
	CHECK(cfg->max_message_size == 50 * 1024 * 1024);
	CHECK(cfg->max_recipients == 100);
	CHECK(cfg->max_connections == 1000);
	CHECK(cfg->max_connections_per_ip == 20);
	CHECK(cfg->max_errors == 10);
	CHECK(cfg->max_line_length == 1000);
	CHECK(cfg->strict_line_length == false);
	CHECK(cfg->idle_timeout == 300);
	CHECK(cfg->command_timeout == 60);
	CHECK(cfg->data_timeout == 600);
	CHECK(cfg->message_timeout == 1800);
	CHECK(cfg->shutdown_timeout == 30);
	CHECK_STR(cfg->store_backend, "sqlite");
	CHECK(cfg->store_fsync == true);
	CHECK(cfg->store_workers == 16);
	CHECK(cfg->remote_port == 25);
	CHECK(cfg->smarthost == NULL);
	CHECK_STR(cfg->retry_schedule, "5m,15m,30m,1h,2h,4h");
	CHECK(cfg->expiry == 5 * 86400);
	CHECK(cfg->resolver == NULL);
	config_free(&cfg);

	/* empty optional values mean "unset" */
	CHECK(load("[server]\ndata_dir=/d\nhostname=\nuser=\n[listen]\nsmtp=\n"
	           "[delivery]\nsmarthost=\n[dns]\nresolver=\n",
	           &cfg, &err) == 1);
	if (cfg != NULL) {
		CHECK(cfg->user == NULL && cfg->listen_smtp == NULL && cfg->smarthost == NULL &&
		      cfg->resolver == NULL && cfg->hostname != NULL);
		config_free(&cfg);
	}
	free(err);
}

static const struct {
	const char *text;
	const char *error;
} error_cases[] = {
    /* structure */
    {"[server]\ndata_dir=/d\n[bogus]\n", "t.conf:3: unknown section [bogus]"},
    {"[server]\ndata_dir=/d\n[Server]\nx=1\n", "t.conf:3: unknown section [Server]"},
    {"[server\ndata_dir=/d\n", "t.conf:1: missing ']' in section header"},
    {"[server] x\ndata_dir=/d\n", "t.conf:1: unexpected text after section header"},
    {"; c\n\n[server]\ndata_dir\n", "t.conf:4: expected 'key = value', a [section] or a comment"},
    {"data_dir = /d\n", "t.conf:1: key 'data_dir' outside any section"},
    /* libinih's own verdict: a ';' comment before the '=' */
    {"[server]\ndata_dir=/d\nuser ; = x\n", "t.conf:3: syntax error"},
    {"[server]\ndata_dir=/d\n[limits]\nmax_recipients=5\n\n\nfoo = 1\n",
     "t.conf:7: unknown key 'foo' in section [limits]"},
    {"[server]\ndata_dir=/d\nsmtp=127.0.0.1:25\n",
     "t.conf:3: unknown key 'smtp' in section [server]"},
    {"[server]\ndata_dir=/d\n[listen]\nsmtp=127.0.0.1:25\n[limits]\n[listen]\n"
     "smtp = 127.0.0.1:26\n",
     "t.conf:7: duplicate key 'smtp' in section [listen] (first set on line 4)"},
    {"[server]\ndata_dir=/d\n[listen]\nsmtp=127.0.0.1:25\n    smtp=127.0.0.1:26\n",
     "t.conf:5: duplicate key 'smtp' in section [listen] (first set on line 4)"},
    {"[server]\ndata_dir=/d\nhostname=a\0b\n", "t.conf:3: NUL byte in line"},
    /* required */
    {"", "t.conf: missing required key data_dir in [server]"},
    {"[server]\nhostname=x\n", "t.conf: missing required key data_dir in [server]"},
    {"[server]\ndata_dir =\n", "t.conf:2: data_dir must not be empty"},
    /* values */
    {"[server]\ndata_dir=/d\n[limits]\nmax_message_size = 12Q\n",
     "t.conf:4: bad size '12Q' for max_message_size"},
    {"[server]\ndata_dir=/d\n[limits]\nmax_message_size = 99999999999999999999G\n",
     "t.conf:4: bad size '99999999999999999999G' for max_message_size"},
    {"[server]\ndata_dir=/d\n[limits]\nmax_message_size = 0\n",
     "t.conf:4: max_message_size must not be 0"},
    {"[server]\ndata_dir=/d\n[limits]\nidle_timeout = 5x\n",
     "t.conf:4: bad duration '5x' for idle_timeout"},
    {"[server]\ndata_dir=/d\n[limits]\nidle_timeout = 0\n", "t.conf:4: idle_timeout must not be 0"},
    {"[server]\ndata_dir=/d\n[limits]\nmax_recipients = -1\n",
     "t.conf:4: bad number '-1' for max_recipients"},
    {"[server]\ndata_dir=/d\n[limits]\nmax_recipients = 4294967296\n",
     "t.conf:4: bad number '4294967296' for max_recipients"},
    {"[server]\ndata_dir=/d\n[limits]\nmax_recipients = 1000001\n",
     "t.conf:4: max_recipients must be at most 1000000"},
    {"[server]\ndata_dir=/d\n[limits]\nmax_line_length = 999\n",
     "t.conf:4: max_line_length must be 0 or at least 1000"},
    {"[server]\ndata_dir=/d\n[store]\nworkers = 0\n", "t.conf:4: workers must not be 0"},
    {"[server]\ndata_dir=/d\n[store]\nworkers = 2000\n", "t.conf:4: workers must be at most 1024"},
    {"[server]\ndata_dir=/d\n[store]\nfsync = maybe\n",
     "t.conf:4: bad boolean 'maybe' for fsync (expected yes or no)"},
    {"[server]\ndata_dir=/d\n[store]\nbackend = postgres\n",
     "t.conf:4: bad backend 'postgres' (expected sqlite)"},
    {"[server]\ndata_dir=/d\n[auth]\nmechanisms = PLAIN CRAM-MD5\n",
     "t.conf:4: bad mechanisms: unknown SASL mechanism 'CRAM-MD5' (expected "
     "SCRAM-SHA-256-PLUS, SCRAM-SHA-256, PLAIN, LOGIN)"},
    {"[server]\ndata_dir=/d\n[auth]\nmechanisms =\n",
     "t.conf:4: bad mechanisms: no SASL mechanism given"},
    {"[server]\ndata_dir=/d\n[auth]\nallow_plaintext_on_loopback = sure\n",
     "t.conf:4: bad boolean 'sure' for allow_plaintext_on_loopback (expected yes or no)"},
    {"[server]\ndata_dir=/d\nlog_level = verbose\n",
     "t.conf:3: bad log_level 'verbose' (expected debug, info, warn or error)"},
    {"[server]\ndata_dir=/d\nhostname = bad host\n",
     "t.conf:3: bad hostname 'bad host' for hostname"},
    {"[server]\ndata_dir=/d\nuser = a b\n", "t.conf:3: bad user name 'a b' for user"},
    {"[server]\ndata_dir=/d\n[listen]\nsmtp = 127.0.0.1:0\n",
     "t.conf:4: bad address '127.0.0.1:0' for smtp (expected host:port or [IPv6]:port, "
     "port 1-65535)"},
    {"[server]\ndata_dir=/d\n[listen]\nimap = ::1:143\n",
     "t.conf:4: bad address '::1:143' for imap (expected host:port or [IPv6]:port, "
     "port 1-65535)"},
    {"[server]\ndata_dir=/d\n[listen]\nsmtp = 127.0.0.1:65536\n",
     "t.conf:4: bad address '127.0.0.1:65536' for smtp (expected host:port or [IPv6]:port, "
     "port 1-65535)"},
    {"[server]\ndata_dir=/d\n[dns]\nresolver = ns.example:53\n",
     "t.conf:4: bad address 'ns.example:53' for resolver (expected IPv4:port or "
     "[IPv6]:port, port 1-65535, or recursive)"},
    {"[server]\ndata_dir=/d\n[dns]\nresolver = Recursive\n",
     "t.conf:4: bad address 'Recursive' for resolver (expected IPv4:port or "
     "[IPv6]:port, port 1-65535, or recursive)"},
    {"[server]\ndata_dir=/d\n[delivery]\nremote_port = 70000\n",
     "t.conf:4: remote_port must be at most 65535"},
    {"[server]\ndata_dir=/d\n[delivery]\nretry_schedule = 5m,,1h\n",
     "t.conf:4: bad retry_schedule '5m,,1h' (expected 1 to 64 comma-separated durations, "
     "each above 0)"},
    {"[server]\ndata_dir=/d\n[delivery]\nexpiry = 1y\n", "t.conf:4: bad duration '1y' for expiry"},
    /* control bytes are escaped in messages */
    {"[server]\ndata_dir=/d\nlog_level = a\x1b[31m\n",
     "t.conf:3: bad log_level 'a\\x1b[31m' (expected debug, info, warn or error)"},
    /* cross-key rules */
    {"[server]\ndata_dir=/d\n[tls]\ncert = /c.pem\n", "t.conf:4: [tls] cert is set but key is not"},
    {"[server]\ndata_dir=/d\n[tls]\n\nkey = /k.pem\n",
     "t.conf:5: [tls] key is set but cert is not"},
    {"[server]\ndata_dir=/d\n[listen]\nsmtp=127.0.0.1:25\nimaps = 127.0.0.1:993\n",
     "t.conf:5: imaps requires [tls] cert and key"},
    {"[server]\ndata_dir=/d\n[listen]\nimap = 127.0.0.1:2525\nsmtp=127.0.0.1:2525\n",
     "t.conf:5: smtp uses 127.0.0.1:2525, already used by imap (line 4)"},
    {"[server]\ndata_dir=/d\nthreads = 300\n", "t.conf:3: threads must be at most 256"},
    {"[server]\ndata_dir=/d\n[limits]\nmax_connections = 10\nmax_connections_smtp = 11\n",
     "t.conf:5: max_connections_smtp (11) is larger than max_connections (10)"},
    /* the first error wins */
    {"[server]\ndata_dir=/d\nlog_level=x\n[nope]\n",
     "t.conf:3: bad log_level 'x' (expected debug, info, warn or error)"},
};

/* cfg->listen[]: the set listeners in table order, their lines and limits */
static void test_listeners(void)
{
	static const char text[] = "[server]\ndata_dir=/d\nthreads = 1\n"
	                           "[listen]\npop3 = 127.0.0.1:110\nimap =\n"
	                           "smtp = 127.0.0.1:25\nsubmission = 127.0.0.1:587\n"
	                           "[tls]\ncert=/c\nkey=/k\n"
	                           "[limits]\nmax_connections = 100\nmax_connections_pop3 = 7\n";
	struct config *cfg = NULL;
	char *err = NULL;
	CHECK(load(text, &cfg, &err) == 1);
	free(err);
	if (cfg == NULL)
		return;
	CHECK(cfg->threads == 1);
	CHECK(cfg->nlisten == 3);
	CHECK_STR(cfg->listen[0].key, "smtp");
	CHECK_STR(cfg->listen[0].addr, "127.0.0.1:25");
	CHECK(cfg->listen[0].line == 7);
	CHECK(cfg->listen[0].max_connections == 75); /* a quarter kept for the others */
	CHECK_STR(cfg->listen[1].key, "submission");
	CHECK(cfg->listen[1].max_connections == 100);
	CHECK_STR(cfg->listen[2].key, "pop3");
	CHECK(cfg->listen[2].line == 5);
	CHECK(cfg->listen[2].max_connections == 7);
	config_free(&cfg);
	/* tiny pools keep no reserve; threads defaults to 0 (one per core) */
	CHECK(load("[server]\ndata_dir=/d\n[listen]\nsmtp = 127.0.0.1:25\n"
	           "[limits]\nmax_connections = 3\n",
	           &cfg, &err) == 1);
	free(err);
	if (cfg == NULL)
		return;
	CHECK(cfg->threads == 0);
	CHECK(cfg->nlisten == 1 && cfg->listen[0].max_connections == 3);
	config_free(&cfg);
}

static void test_errors(void)
{
	for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
		const char *text = error_cases[i].text;
		size_t len = strlen(text);
		/* the NUL case: include the bytes after the embedded NUL */
		if (strstr(error_cases[i].error, "NUL byte") != NULL)
			len += 1 + strlen(text + len + 1);
		struct config *cfg = NULL;
		char *err = NULL;
		int ret = config_load_string("t.conf", text, len, &cfg, &err);
		CHECK(ret == -1);
		CHECK(cfg == NULL);
		CHECK_STR(err, error_cases[i].error);
		free(err);
		config_free(&cfg);
	}
	/* a line longer than the line buffer */
	char big[600];
	memcpy(big, "[server]\ndata_dir=/", 19);
	memset(big + 19, 'a', sizeof(big) - 21);
	big[sizeof(big) - 2] = '\n';
	big[sizeof(big) - 1] = '\0';
	struct config *cfg = NULL;
	char *err = NULL;
	CHECK(load(big, &cfg, &err) == -1);
	CHECK(err != NULL && strncmp(err, "t.conf:2: line too long (more than ", 35) == 0);
	free(err);
	/* [delivery] keys of the queue runner */
	expect_error("[server]\ndata_dir=/d\n[delivery]\nsource_address = 127.0.0.1:25\n",
	             "t.conf:4: bad address '127.0.0.1:25' for source_address (expected an IPv4 or "
	             "IPv6 address)");
	expect_error("[server]\ndata_dir=/d\n[delivery]\nsmarthost = r.test:587\n"
	             "smarthost_user = u\n",
	             "t.conf:5: [delivery] smarthost_user is set but smarthost_password_file is not");
	expect_error("[server]\ndata_dir=/d\n[delivery]\nsmarthost_user = u\n"
	             "smarthost_password_file = /pw\n",
	             "t.conf:4: [delivery] smarthost_user is set but smarthost is not");
	expect_error("[server]\ndata_dir=/d\n[delivery]\nsmarthost_password_file = /pw\n",
	             "t.conf:4: [delivery] smarthost_password_file is set but smarthost_user is not");
	expect_error("[server]\ndata_dir=/d\n[delivery]\nsrs_secret = short\n",
	             "t.conf:4: bad srs_secret (expected 16 to 255 printable characters, no "
	             "blanks)");
	expect_error("[server]\ndata_dir=/d\n[delivery]\nmax_connections = 0\n",
	             "t.conf:4: max_connections must not be 0");
	{
		struct config *dc = NULL;
		char *derr = NULL;
		const char *ok = "[server]\ndata_dir=/d\n[delivery]\nsource_address = ::1\n"
		                 "delay_warning = 0\nmax_connections_per_domain = 3\n"
		                 "connect_timeout = 5s\nsmarthost = r.test:587\nsmarthost_user = u\n"
		                 "smarthost_password_file = /pw\n";
		CHECK(load(ok, &dc, &derr) == 1);
		CHECK(dc != NULL && strcmp(dc->delivery_source_address, "::1") == 0);
		CHECK(dc != NULL && dc->delay_warning == 0 && dc->delivery_max_per_domain == 3);
		CHECK(dc != NULL && dc->delivery_connect_timeout == 5);
		CHECK(dc != NULL && dc->delivery_max_connections == 100);
		free(derr);
		config_free(&dc);
		CHECK(load("[server]\ndata_dir=/d\n", &dc, &derr) == 1);
		CHECK(dc != NULL && dc->delay_warning == 4 * 3600 && dc->delivery_max_per_domain == 10);
		free(derr);
		config_free(&dc);
	}
	/* a file without a final newline still parses its last line */
	expect_error("[server]\ndata_dir=/d\nlog_level=loud",
	             "t.conf:3: bad log_level 'loud' (expected debug, info, warn or error)");
}

/* Writes text to a fresh file under dir; returns its malloc'd path. */
static char *write_temp(const char *dir, const char *text)
{
	char tmpl[256];
	snprintf(tmpl, sizeof(tmpl), "%s/hermod-config-XXXXXX", dir);
	int fd = mkstemp(tmpl);
	CHECK(fd >= 0);
	if (fd < 0)
		return NULL;
	size_t len = strlen(text);
	CHECK(write(fd, text, len) == (ssize_t)len);
	close(fd);
	return strdup(tmpl);
}

static void test_files(void)
{
	char dirt[] = "/tmp/hermod-config-test-XXXXXX";
	char *dir = mkdtemp(dirt);
	CHECK(dir != NULL);
	if (dir == NULL)
		return;

	/* relative data_dir: against the config file's directory */
	char *path = write_temp(dir, "[server]\ndata_dir = data\n");
	struct config *cfg = NULL;
	char *err = NULL;
	CHECK(config_load(path, &cfg, &err) == 1);
	if (cfg != NULL) {
		char want[512];
		snprintf(want, sizeof(want), "%s/data", dir);
		CHECK_STR(cfg->data_dir, want);
		CHECK_STR(cfg->path, path);
		config_free(&cfg);
	}
	free(err);
	unlink(path);
	free(path);

	/* errors carry the path as given */
	path = write_temp(dir, "[server]\ndata_dir = /d\n[limits]\nmax_errors = ten\n");
	char want[512];
	snprintf(want, sizeof(want), "%s:4: bad number 'ten' for max_errors", path);
	CHECK(config_load(path, &cfg, &err) == -1);
	CHECK_STR(err, want);
	free(err);
	unlink(path);

	/* unreadable file */
	CHECK(config_load(path, &cfg, &err) == -1);
	snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", path);
	CHECK_STR(err, want);
	CHECK(cfg == NULL);
	free(err);
	free(path);

	rmdir(dir);

	/* relative data_dir with a name that has no directory part: against "." */
	CHECK(config_load_string("h.conf", "[server]\ndata_dir=d\n", 20, &cfg, &err) == 1);
	if (cfg != NULL) {
		char cwd[PATH_MAX], w[PATH_MAX + 8];
		CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
		snprintf(w, sizeof(w), "%s/d", cwd);
		CHECK_STR(cfg->data_dir, w);
		config_free(&cfg);
	}
	free(err);
}

int main(void)
{
	test_parse_size();
	test_parse_duration();
	test_parse_bool();
	test_parse_hostport();
	test_parse_retry();
	test_default_path();
	test_full();
	test_defaults();
	test_errors();
	test_listeners();
	test_files();
	return unit_finish("config");
}
