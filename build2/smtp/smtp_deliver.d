build2/smtp/smtp_deliver.o: src/smtp/smtp_deliver.c src/core/log.h \
 src/delivery/srs.h src/smtp/smtp_session_int.h src/core/buf.h \
 src/core/worker.h src/mail/header.h src/net/server.h \
 src/smtp/smtp_parse.h src/mail/address.h src/store/store.h
src/core/log.h:
src/delivery/srs.h:
src/smtp/smtp_session_int.h:
src/core/buf.h:
src/core/worker.h:
src/mail/header.h:
src/net/server.h:
src/smtp/smtp_parse.h:
src/mail/address.h:
src/store/store.h:
