build2/delivery/queue_runner.o: src/delivery/queue_runner.c \
 src/delivery/queue_runner.h src/core/config.h src/core/log.h \
 src/core/worker.h src/delivery/dsn.h src/delivery/route.h src/dns/dns.h \
 src/delivery/srs.h src/policy/dkim_sign.h src/smtp/smtp_client_parse.h \
 src/core/buf.h src/smtp/smtp_client.h src/store/store.h
src/delivery/queue_runner.h:
src/core/config.h:
src/core/log.h:
src/core/worker.h:
src/delivery/dsn.h:
src/delivery/route.h:
src/dns/dns.h:
src/delivery/srs.h:
src/policy/dkim_sign.h:
src/smtp/smtp_client_parse.h:
src/core/buf.h:
src/smtp/smtp_client.h:
src/store/store.h:
