build2/cli/cli_dns.o: src/cli/cli_dns.c src/cli/cli_dns.h src/cli/cli.h \
 src/core/config.h src/dns/dns.h
src/cli/cli_dns.h:
src/cli/cli.h:
src/core/config.h:
src/dns/dns.h:
