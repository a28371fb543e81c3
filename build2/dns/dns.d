build2/dns/dns.o: src/dns/dns.c src/dns/dns.h src/core/config.h
src/dns/dns.h:
src/core/config.h:
