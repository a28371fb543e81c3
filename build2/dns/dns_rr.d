build2/dns/dns_rr.o: src/dns/dns_rr.c src/dns/dns.h
src/dns/dns.h:
