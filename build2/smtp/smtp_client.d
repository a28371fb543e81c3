build2/smtp/smtp_client.o: src/smtp/smtp_client.c src/smtp/smtp_client.h \
 src/core/base64.h src/core/buf.h src/core/worker.h src/net/tls.h \
 src/smtp/smtp_client_parse.h src/store/store.h
src/smtp/smtp_client.h:
src/core/base64.h:
src/core/buf.h:
src/core/worker.h:
src/net/tls.h:
src/smtp/smtp_client_parse.h:
src/store/store.h:
