/* hermod dns lookup: see cli_dns.h. The lookup goes through the same
 * asynchronous resolver as the server's, on an event loop of its own. */
#include "cli/cli_dns.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "core/config.h"
#include "dns/dns.h"

struct cli_dns_wait {
	struct event_base *base;
	int ret;
};

/* TXT data as one quoted string: printable ASCII as is, '"' and '\' escaped,
 * other octets as \DDD (zone-file style). */
static void cli_dns_print_txt(const struct dns_txt *t)
{
	putchar('"');
	for (size_t i = 0; i < t->len; i++) {
		unsigned char c = (unsigned char)t->data[i];
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c >= 0x20 && c < 0x7f)
			putchar(c);
		else
			printf("\\%03u", c);
	}
	putchar('"');
}

static void cli_dns_print(const struct dns_answer *a, size_t k)
{
	char ip[INET6_ADDRSTRLEN];

	printf("%s ", dns_type_name(a->type));
	switch (a->type) {
	case DNS_TYPE_A:
		printf("%s", inet_ntop(AF_INET, &a->a[k], ip, sizeof(ip)));
		break;
	case DNS_TYPE_AAAA:
		printf("%s", inet_ntop(AF_INET6, &a->aaaa[k], ip, sizeof(ip)));
		break;
	case DNS_TYPE_MX:
		printf("%u %s", a->mx[k].preference, a->mx[k].host);
		break;
	case DNS_TYPE_PTR:
		printf("%s", a->ptr[k].name);
		break;
	case DNS_TYPE_TXT:
		cli_dns_print_txt(&a->txt[k]);
		break;
	case DNS_TYPE_TLSA:
		printf("%u %u %u ", a->tlsa[k].usage, a->tlsa[k].selector, a->tlsa[k].mtype);
		for (size_t i = 0; i < a->tlsa[k].len; i++)
			printf("%02x", a->tlsa[k].data[i]);
		break;
	}
	putchar('\n');
}

static void cli_dns_done(void *ctx, const struct dns_answer *a)
{
	struct cli_dns_wait *w = ctx;

	for (size_t k = 0; k < a->n; k++)
		cli_dns_print(a, k);
	printf("; %s %s ttl %u", dns_status_name(a->status), dns_security_name(a->security),
	       a->ttl);
	if (a->why != NULL)
		printf(" (%s)", a->why);
	putchar('\n');
	w->ret = a->status == DNS_TEMPFAIL ? CLI_EXIT_ERROR : CLI_EXIT_OK;
	event_base_loopbreak(w->base);
}

int cli_dns_lookup(const struct config *cfg, const char *type_name, const char *name)
{
	enum dns_type type = dns_type_from_name(type_name);
	struct dns_options opts = {.resolver = cfg->resolver,
	                           .trust_anchor = cfg->dns_trust_anchor};
	struct cli_dns_wait w = {.ret = CLI_EXIT_ERROR};
	struct dns_resolver *r = NULL;
	char *error = NULL;

	if (type == 0) {
		fprintf(stderr, "hermod: unknown record type '%s' (A, AAAA, MX, TXT, PTR, TLSA)\n",
		        type_name);
		return CLI_EXIT_USAGE;
	}
	if (dns_name_check(name) != 1) {
		fprintf(stderr, "hermod: '%s' is not a valid domain name\n", name);
		return CLI_EXIT_USAGE;
	}
	w.base = event_base_new();
	if (w.base == NULL) {
		fprintf(stderr, "hermod: cannot create an event loop\n");
		return CLI_EXIT_ERROR;
	}
	if (dns_resolver_new(w.base, &opts, &r, &error) < 0 ||
	    dns_lookup(r, name, type, cli_dns_done, &w, NULL, &error) < 0) {
		fprintf(stderr, "hermod: %s\n", error != NULL ? error : "resolver failed");
		free(error);
	} else {
		event_base_dispatch(w.base);
	}
	dns_resolver_free(&r);
	event_base_free(w.base);
	return w.ret;
}
