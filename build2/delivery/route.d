build2/delivery/route.o: src/delivery/route.c src/delivery/route.h \
 src/dns/dns.h
src/delivery/route.h:
src/dns/dns.h:
